"""Expands template.yaml's SAM transform into plain CloudFormation, offline, so checkov sees the
resources SAM generates (the API stage, the functions' IAM roles) and the state machine with its
definition.

usage: expand_sam.py TEMPLATE OUTPUT.json [NAME=VALUE ...]

Each NAME=VALUE becomes that parameter's default: checkov evaluates the template's conditions
with the defaults, so resources of other settings (the arrival queues of TriggerMode=ObjectCreated,
the ticket rule of TicketingWebhookUrl) are scanned only in an expansion that turns them on.
"""
import json
import sys
from pathlib import Path

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class OfflinePolicies:
    """The managed policies SAM attaches by name, without asking IAM for their ARNs."""

    def load(self):
        return {
            "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
            "AWSXRayDaemonWriteAccess": "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess",
        }


def main(source: str, target: str, *defaults: str) -> None:
    path = Path(source)
    template = yaml_parse(path.read_text())
    for default in defaults:
        name, value = default.split("=", 1)
        template["Parameters"][name]["Default"] = value
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            # sam package would upload the code; any S3 location stands in for it here.
            properties["CodeUri"] = "s3://placeholder-bucket/code.zip"
        if resource["Type"] == "AWS::StepFunctions::StateMachine" and isinstance(
            properties.get("DefinitionS3Location"), str
        ):
            # sam package would upload the definition; inline it so the scan sees it.
            definition = path.parent / properties.pop("DefinitionS3Location")
            properties["Definition"] = json.loads(definition.read_text())
    expanded = transform(template, {}, OfflinePolicies(), passthrough_metadata=True)
    Path(target).write_text(json.dumps(expanded, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
