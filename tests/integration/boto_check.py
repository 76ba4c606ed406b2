"""The independent client the moto tests check their results with: boto3, AWS's own SDK.

Each subcommand prints one JSON document. Run as
    python3 boto_check.py --endpoint http://127.0.0.1:PORT COMMAND [ARGS]
"""

import argparse
import datetime
import json
import sys

import boto3

REGION = "us-east-1"


def client(args, service):
    return boto3.client(
        service,
        endpoint_url=args.endpoint,
        region_name=REGION,
        aws_access_key_id=args.key_id,
        aws_secret_access_key=args.secret,
    )


def seed_auth(args):
    """Three calls that moto lets through before it turns authentication on: a user that may
    do everything, and its access key."""
    iam = client(args, "iam")
    iam.create_user(UserName="csmp")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName="csmp", PolicyName="everything", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="csmp")["AccessKey"]
    return {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


def image(args):
    images = client(args, "ec2").describe_images(Owners=["amazon"])["Images"]
    return {"image_id": sorted(i["ImageId"] for i in images)[0]}


def instances(args):
    key, value = args.tag.split("=", 1)
    pages = client(args, "ec2").get_paginator("describe_instances").paginate(
        Filters=[{"Name": f"tag:{key}", "Values": [value]}]
    )
    found = []
    for page in pages:
        for reservation in page["Reservations"]:
            for i in reservation["Instances"]:
                found.append({
                    "id": i["InstanceId"],
                    "state": i["State"]["Name"],
                    "type": i["InstanceType"],
                    "client_token": i.get("ClientToken", ""),
                    "tags": {t["Key"]: t["Value"] for t in i.get("Tags", [])},
                })
    return {"instances": found}


def create_group(args):
    asg = client(args, "autoscaling")
    image_id = image(args)["image_id"]
    asg.create_launch_configuration(
        LaunchConfigurationName=f"{args.name}-lc", ImageId=image_id, InstanceType="t3.micro"
    )
    tags = []
    for tag in args.tag or []:
        key, value = tag.split("=", 1)
        tags.append({"ResourceId": args.name, "ResourceType": "auto-scaling-group",
                     "Key": key, "Value": value, "PropagateAtLaunch": True})
    asg.create_auto_scaling_group(
        AutoScalingGroupName=args.name,
        LaunchConfigurationName=f"{args.name}-lc",
        MinSize=args.min,
        MaxSize=args.max,
        DesiredCapacity=args.desired,
        AvailabilityZones=[f"{REGION}a"],
        Tags=tags,
    )
    return group(args)


def group(args):
    groups = client(args, "autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[args.name]
    )["AutoScalingGroups"]
    g = groups[0]
    return {
        "desired": g["DesiredCapacity"],
        "min": g["MinSize"],
        "max": g["MaxSize"],
        "instances": len(g["Instances"]),
    }


def put_daily_peak(args):
    """Hourly values for the last `days` days up to the current hour: `base` every hour but
    `peak` in the hour that comes `peak_in` hours after the current one (UTC)."""
    cw = client(args, "cloudwatch")
    now = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0)
    peak_hour = (now.hour + args.peak_in) % 24
    points = []
    for k in range(1, args.days * 24 + 1):
        t = now - datetime.timedelta(hours=k)
        points.append({
            "MetricName": args.metric,
            "Dimensions": [{"Name": "AutoScalingGroupName", "Value": args.group}],
            "Timestamp": t,
            "Value": float(args.peak if t.hour == peak_hour else args.base),
            "Unit": "Count",
        })
    for i in range(0, len(points), 20):
        cw.put_metric_data(Namespace=args.namespace, MetricData=points[i:i + 20])
    return {"published": len(points), "peak_hour": peak_hour}


def put_now(args):
    """One data point per minute for the last `minutes` minutes, all `value`."""
    cw = client(args, "cloudwatch")
    now = datetime.datetime.now(datetime.timezone.utc)
    points = [{
        "MetricName": args.metric,
        "Dimensions": [{"Name": "AutoScalingGroupName", "Value": args.group}],
        "Timestamp": now - datetime.timedelta(minutes=m),
        "Value": args.value,
        "Unit": "Percent",
    } for m in range(args.minutes)]
    cw.put_metric_data(Namespace=args.namespace, MetricData=points)
    return {"published": len(points)}


def sns_create_topic(args):
    return {"arn": client(args, "sns").create_topic(Name=args.name)["TopicArn"]}


def sns_subscribe(args):
    """Subscribes `endpoint_url` to the topic; returns the subscription and its attributes as SNS
    reports them (moto answers an http(s) subscription as confirmed at once)."""
    sns = client(args, "sns")
    arn = sns.subscribe(
        TopicArn=args.topic, Protocol=args.protocol, Endpoint=args.endpoint_url,
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    return {"arn": arn, "attributes": attributes}


def sns_publish(args):
    kwargs = {"TopicArn": args.topic, "Message": args.message}
    if args.subject:
        kwargs["Subject"] = args.subject
    return {"message_id": client(args, "sns").publish(**kwargs)["MessageId"]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--key-id", default="AKIDBOTO3CHECK")
    parser.add_argument("--secret", default="boto3-check")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("seed-auth")
    sub.add_parser("image")
    p = sub.add_parser("instances")
    p.add_argument("--tag", required=True)
    p = sub.add_parser("create-group")
    p.add_argument("name")
    p.add_argument("--min", type=int, required=True)
    p.add_argument("--max", type=int, required=True)
    p.add_argument("--desired", type=int, required=True)
    p.add_argument("--tag", action="append")
    p = sub.add_parser("group")
    p.add_argument("name")
    p = sub.add_parser("put-daily-peak")
    for name in ["namespace", "metric", "group"]:
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--days", type=int, default=3)
    p.add_argument("--base", type=float, required=True)
    p.add_argument("--peak", type=float, required=True)
    p.add_argument("--peak-in", type=int, required=True)
    p = sub.add_parser("put-now")
    for name in ["namespace", "metric", "group"]:
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--value", type=float, required=True)
    p.add_argument("--minutes", type=int, default=5)
    p = sub.add_parser("sns-create-topic")
    p.add_argument("name")
    p = sub.add_parser("sns-subscribe")
    p.add_argument("topic")
    p.add_argument("endpoint_url")
    p.add_argument("--protocol", default="http")
    p = sub.add_parser("sns-publish")
    p.add_argument("topic")
    p.add_argument("--message", required=True)
    p.add_argument("--subject")
    args = parser.parse_args()
    command = {
        "seed-auth": seed_auth,
        "image": image,
        "instances": instances,
        "create-group": create_group,
        "group": group,
        "put-daily-peak": put_daily_peak,
        "put-now": put_now,
        "sns-create-topic": sns_create_topic,
        "sns-subscribe": sns_subscribe,
        "sns-publish": sns_publish,
    }[args.command]
    json.dump(command(args), sys.stdout)


if __name__ == "__main__":
    main()
