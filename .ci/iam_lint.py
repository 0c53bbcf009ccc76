"""Lints every IAM policy of the SAM-expanded template with parliament, offline: unknown
actions, resources that do not match an action's resource types, malformed statements. Each
finding must be listed in .ci/iam_lint_allowed.json with the reason it is accepted, or this fails.

Intrinsic functions are resolved to ARNs of the right shape (the account, region and names are
placeholders), and both branches of an Fn::If are linted, so conditional grants are checked too.

usage: iam_lint.py EXPANDED.json ALLOWED.json
"""
import json
import re
import sys

import parliament

ACCOUNT = "123456789012"
REGION = "us-east-1"


def arn_of(resources, logical_id, attribute="Arn"):
    kind = resources.get(logical_id, {}).get("Type", "")
    name = logical_id.lower()
    if kind == "AWS::S3::Bucket":
        return f"arn:aws:s3:::{name}" if attribute == "Arn" else name
    if kind == "AWS::Lambda::Function":
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}" if attribute == "Arn" else name
    if kind == "AWS::SNS::Topic":
        return f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}" if attribute != "TopicName" else name
    if kind == "AWS::KMS::Key":
        return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000"
    if kind == "AWS::Logs::LogGroup":
        return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"
    if kind == "AWS::StepFunctions::StateMachine":
        return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
    if kind == "AWS::Events::ApiDestination":
        return f"arn:aws:events:{REGION}:{ACCOUNT}:api-destination/{name}/00000000-0000-0000-0000-000000000000"
    if kind == "AWS::SQS::Queue":
        if attribute == "Arn":
            return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}" if attribute == "Ref" else name
    if kind == "AWS::Macie::AllowList":
        allow_list_id = "a" * 22
        return f"arn:aws:macie2:{REGION}:{ACCOUNT}:allow-list/{allow_list_id}" if attribute == "Arn" else allow_list_id
    return name


PARAMETERS = {}


def reference(resources, name):
    pseudo = {
        "AWS::Partition": "aws",
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": "stack",
    }
    if name in pseudo:
        return pseudo[name]
    if name in PARAMETERS and name.endswith("KmsKeyArn"):
        # A key named by parameter (an existing discovery-results location).
        return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-1111-1111-1111-111111111111"
    if name in resources:
        kind = resources[name]["Type"]
        if kind in ("AWS::SNS::Topic", "AWS::StepFunctions::StateMachine"):
            return arn_of(resources, name)
        return arn_of(resources, name, "Ref")
    return name.lower()


def substitute(resources, text, variables):
    def one(match):
        name = match.group(1)
        if name in variables:
            return variables[name]
        if "." in name and not name.startswith("AWS::"):
            logical_id, attribute = name.split(".", 1)
            return arn_of(resources, logical_id, attribute)
        return reference(resources, name)

    return re.sub(r"\$\{([^}]+)\}", one, text)


def resolve(resources, value):
    """Every possible resolution of a value (an Fn::If yields both branches)."""
    if isinstance(value, dict) and len(value) == 1:
        (key, inner), = value.items()
        if key == "Ref":
            return [None] if inner == "AWS::NoValue" else [reference(resources, inner)]
        if key == "Fn::GetAtt":
            logical_id, attribute = inner if isinstance(inner, list) else inner.split(".", 1)
            return [arn_of(resources, logical_id, attribute)]
        if key == "Fn::Sub":
            if isinstance(inner, str):
                return [substitute(resources, inner, {})]
            text, variables = inner
            resolved = {name: resolve(resources, item)[0] for name, item in variables.items()}
            return [substitute(resources, text, resolved)]
        if key == "Fn::If":
            return resolve(resources, inner[1]) + resolve(resources, inner[2])
        if key == "Fn::Join":
            separator, items = inner
            return [separator.join(str(resolve(resources, item)[0]) for item in items)]
    if isinstance(value, dict):
        return [{key: resolve(resources, item)[0] for key, item in value.items()
                 if resolve(resources, item)[0] is not None}]
    if isinstance(value, list):
        out = []
        for item in value:
            out.extend(v for v in resolve(resources, item) if v is not None)
        return [out]
    return [value]


def main(expanded_path, allowed_path):
    template = json.load(open(expanded_path))
    allowed = json.load(open(allowed_path))
    resources = template["Resources"]
    PARAMETERS.update(template.get("Parameters", {}))
    failures = []
    accepted = 0
    for logical_id, resource in sorted(resources.items()):
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for policy in resource["Properties"].get("Policies", []):
            document = resolve(resources, policy["PolicyDocument"])[0]
            name = f"{logical_id}/{policy.get('PolicyName', '?')}"
            analysed = parliament.analyze_policy_string(json.dumps(document))
            for finding in analysed.findings:
                detail = json.dumps(finding.detail, sort_keys=True, default=str)
                key = f"{finding.issue} {detail}"
                reason = next((a["reason"] for a in allowed
                               if a["issue"] == finding.issue and a["match"] in detail), None)
                if reason:
                    accepted += 1
                else:
                    failures.append(f"{name}: {key}")
    print(f"parliament: {accepted} finding(s) accepted with a reason in {allowed_path}")
    for failure in failures:
        print(f"  NOT ACCEPTED {failure}")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main(*sys.argv[1:])
