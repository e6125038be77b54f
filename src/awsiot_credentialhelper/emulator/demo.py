"""``make demo``: the AWS Security Blog's thermostat walkthrough, replayed on the local emulator.

The blog post "How to Eliminate the Need for Hardcoded AWS Credentials in Devices by Using the
AWS IoT Credentials Provider" sets up a thermostat that writes its readings to DynamoDB with
credentials obtained from its X.509 certificate. Here the same steps run against moto and the
emulator: the admin side uses ordinary boto3 calls, the device side uses this library's
``Boto3SessionProvider``. Nothing leaves this machine. Run it with
``python -m awsiot_credentialhelper.emulator.demo``.
"""

from __future__ import annotations

import contextlib
import decimal
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

from awsiot_credentialhelper._private_file import write_private_file
from awsiot_credentialhelper.emulator import assume_role_policy

REGION = "us-east-1"
THING_TYPE = "Thermostat"
THING = "MyHomeThermostat"
OWNER = "Alice"
ROLE = "Thermostat-dynamodb-access-role"
ROLE_ALIAS = "Thermostat-dynamodb-access-role-alias"
IOT_POLICY = "AliceThermostatPolicy"
TABLE = "MyHomeThermostat"


class _Steps:
    """Numbered, newcomer-friendly output on stdout."""

    def __init__(self) -> None:
        self.number = 0

    def step(self, title: str) -> None:
        self.number += 1
        print(f"\n{self.number}. {title}")

    @staticmethod
    def detail(text: str) -> None:
        print(f"   {text}")


def _dynamodb_policy(account: str) -> dict[str, Any]:
    # ${credentials-iot:ThingName} limits each device to the table named after its thing.
    table_arn = f"arn:aws:dynamodb:{REGION}:{account}:table/${{credentials-iot:ThingName}}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "dynamodb:PutItem",
                    "dynamodb:GetItem",
                    "dynamodb:Query",
                    "dynamodb:DescribeTable",
                ],
                "Resource": table_arn,
            }
        ],
    }


def _iot_policy(account: str) -> dict[str, Any]:
    alias = "${iot:Connection.Thing.ThingTypeName}-dynamodb-access-role-alias"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:AssumeRoleWithCertificate",
                "Resource": f"arn:aws:iot:{REGION}:{account}:rolealias/{alias}",
                "Condition": {
                    "StringEquals": {"iot:Connection.Thing.Attributes[Owner]": OWNER},
                    "Bool": {"iot:Connection.Thing.IsAttached": "true"},
                },
            }
        ],
    }


def _admin_setup(emulator: Any, directory: Path, out: _Steps) -> tuple[Path, Path]:
    """Everything the blog's administrator does, as boto3 calls; returns cert and key files."""
    iot, iam = emulator.client("iot"), emulator.client("iam")
    account = emulator.account_id

    out.step(f"Admin: create thing type {THING_TYPE!r} and thing {THING!r} (Owner={OWNER})")
    iot.create_thing_type(thingTypeName=THING_TYPE)
    iot.create_thing(
        thingName=THING,
        thingTypeName=THING_TYPE,
        attributePayload={"attributes": {"Owner": OWNER}},
    )

    out.step("Admin: create the device certificate and attach it to the thing")
    keys = iot.create_keys_and_certificate(setAsActive=True)
    certificate_file = directory / "thermostat.cert.pem"
    private_key_file = directory / "thermostat.private.key"
    write_private_file(certificate_file, keys["certificatePem"].encode("ascii"), mode=0o644)
    write_private_file(private_key_file, keys["keyPair"]["PrivateKey"].encode("ascii"))
    iot.attach_thing_principal(thingName=THING, principal=keys["certificateArn"])
    out.detail(f"certificate id {keys['certificateId'][:16]}...")
    out.detail(
        f"files: {certificate_file.name}, {private_key_file.name} (key readable by you only)"
    )

    out.step(f"Admin: create IAM role {ROLE!r}, trusted by credentials.iot.amazonaws.com")
    role_arn = iam.create_role(
        RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(assume_role_policy())
    )["Role"]["Arn"]
    iam.put_role_policy(
        RoleName=ROLE,
        PolicyName="Thermostat-dynamodb-access",
        PolicyDocument=json.dumps(_dynamodb_policy(account)),
    )
    out.detail(f"inline policy: DynamoDB on table/${{credentials-iot:ThingName}} ({role_arn})")

    out.step(f"Admin: create role alias {ROLE_ALIAS!r} (credentials live 3600 s)")
    iot.create_role_alias(roleAlias=ROLE_ALIAS, roleArn=role_arn, credentialDurationSeconds=3600)

    out.step(f"Admin: create IoT policy {IOT_POLICY!r} and attach it to the certificate")
    iot.create_policy(policyName=IOT_POLICY, policyDocument=json.dumps(_iot_policy(account)))
    iot.attach_policy(policyName=IOT_POLICY, target=keys["certificateArn"])
    out.detail("allows iot:AssumeRoleWithCertificate on")
    out.detail("  rolealias/${iot:Connection.Thing.ThingTypeName}-dynamodb-access-role-alias")
    out.detail(f"  only if the thing's Owner attribute is {OWNER!r} and it is attached")

    out.step(f"Admin: create the DynamoDB table {TABLE!r}")
    emulator.client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "Timestamp", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Timestamp", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return certificate_file, private_key_file


@contextlib.contextmanager
def _device_session_provider(
    emulator: Any, thing_name: str, certificate_file: Path, private_key_file: Path
) -> Iterator[Any]:
    from awsiot_credentialhelper.boto3_session import Boto3SessionProvider  # noqa: PLC0415

    provider = Boto3SessionProvider(
        emulator.endpoint,  # where production passes <prefix>.credentials.iot.<region>...
        ROLE_ALIAS,
        thing_name,
        str(certificate_file),
        private_key=str(private_key_file),
        ca=str(emulator.ca_file),  # where production passes AmazonRootCA1.pem
        trust_env=False,
    )
    with provider:
        yield provider


def _device_work(
    emulator: Any, certificate_file: Path, private_key_file: Path, out: _Steps
) -> None:
    """What the thermostat does with its certificate: credentials, then DynamoDB."""
    out.step("Device: get a boto3 session from the certificate (Boto3SessionProvider)")
    with _device_session_provider(emulator, THING, certificate_file, private_key_file) as p:
        session = p.get_session(region=REGION)
        moto_url = emulator.aws_endpoint_url
        identity = session.client("sts", endpoint_url=moto_url).get_caller_identity()
        out.detail(f"caller identity: {identity['Arn']}")
        out.detail("(the session name is the certificate id)")

        out.step(f"Device: write a reading to {TABLE!r} and read it back")
        table = session.resource("dynamodb", endpoint_url=moto_url).Table(TABLE)
        now = int(time.time())
        reading = {
            "Timestamp": now,
            "temperature": decimal.Decimal("21.5"),
            "humidity": decimal.Decimal("45"),
        }
        table.put_item(Item=reading)
        item = table.get_item(Key={"Timestamp": now})["Item"]
        temperature, humidity = item["temperature"], item["humidity"]
        out.detail(f"wrote and read back: temperature={temperature} C, humidity={humidity} %")
        out.detail(f"credentials fetched from the emulator: {p.fetch_count} time(s)")


def _denied_request(
    emulator: Any, certificate_file: Path, private_key_file: Path, out: _Steps
) -> Optional[str]:
    """Show what a refusal looks like: a thing name the certificate is not attached to."""
    from awsiot_credentialhelper.exceptions import InvalidThingNameError  # noqa: PLC0415

    out.step("Device: ask again with a wrong thing name -- the provider refuses")
    with _device_session_provider(
        emulator, "NotMyThermostat", certificate_file, private_key_file
    ) as provider:
        session = provider.get_session(region=REGION)
        try:
            session.client("sts", endpoint_url=emulator.aws_endpoint_url).get_caller_identity()
        except InvalidThingNameError as exc:
            out.detail(f"{type(exc).__name__}: {exc}")
            return str(exc)
    return None


def main(argv: Optional[list[str]] = None) -> int:
    """Run the walkthrough; return 0 when every step behaved as expected."""
    del argv  # no options: the demo is self-contained
    from awsiot_credentialhelper.emulator import Emulator  # noqa: PLC0415

    out = _Steps()
    print("AWS IoT credentials provider walkthrough, on a local emulator (moto + mutual TLS)")
    with tempfile.TemporaryDirectory(prefix="iot-emulator-demo-") as tmp:
        directory = Path(tmp)
        with Emulator(directory=directory, region=REGION) as emulator:
            out.step("Start the emulator")
            out.detail(f"credential endpoint  https://{emulator.endpoint}  (mutual TLS)")
            out.detail(f"its CA certificate   {emulator.ca_file.name}")
            out.detail(f"AWS APIs (moto)      {emulator.aws_endpoint_url}")
            certificate_file, private_key_file = _admin_setup(emulator, directory, out)
            _device_work(emulator, certificate_file, private_key_file, out)
            refused = _denied_request(emulator, certificate_file, private_key_file, out)
            stats = emulator.stats()
    out.step("Done")
    out.detail(f"the emulator answered {stats.total} credential request(s): {stats.by_outcome}")
    if refused is None:
        print("error: the wrong thing name was not refused", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
