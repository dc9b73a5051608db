"""A CloudFront distribution on the moto server, for the invalidation tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3

from skyline.settings import Settings
from tests.support.scenario import unique

if TYPE_CHECKING:
    from mypy_boto3_cloudfront import CloudFrontClient


def moto_distribution(settings: Settings, comment: str) -> tuple[CloudFrontClient, str]:
    """A CloudFront client on the moto server and the id of a new distribution in front of S3."""
    client = boto3.client(
        "cloudfront",
        endpoint_url=settings.s3_endpoint_url,
        region_name="us-east-1",
        # the stack's key pair: the embedded server serves signed requests only
        aws_access_key_id=settings.aws_access_key_id.get_secret_value(),
        aws_secret_access_key=settings.aws_secret_access_key.get_secret_value(),
    )
    origin = "skyline-s3"
    dist = client.create_distribution(
        DistributionConfig={
            "CallerReference": unique("ref"),
            "Comment": comment,
            "Enabled": True,
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": origin,
                        "DomainName": "skyline.s3.amazonaws.com",
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": origin,
                "ViewerProtocolPolicy": "redirect-to-https",
                "MinTTL": 0,
                "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                "TrustedSigners": {"Enabled": False, "Quantity": 0},
            },
        }
    )
    return client, dist["Distribution"]["Id"]
