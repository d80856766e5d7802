"""python3 make-bucket.py NAME: create the bucket on the local radosgw unless it exists."""
import os
import sys

import boto3
import botocore.exceptions

client = boto3.client('s3', endpoint_url='http://127.0.0.1:7480', region_name='us-east-1',
                      aws_access_key_id=os.environ['S3_ACCESS_KEY'],
                      aws_secret_access_key=os.environ['S3_SECRET_KEY'])
try:
    client.head_bucket(Bucket=sys.argv[1])
except botocore.exceptions.ClientError:
    client.create_bucket(Bucket=sys.argv[1])
