"""detect-secrets plugins for providers its built-in set lacks, and command-line passwords.

Loaded by detect-secrets from this file's path (its custom-plugin mechanism), so the module
imports nothing from the pipeline: these shapes are written from each provider's documented
token format, not taken from the scrubber's rules, and run on detect-secrets' engine.
"""

import re

from detect_secrets.plugins.base import RegexBasedDetector

_END = r"(?![A-Za-z0-9_-])"  # a token ends where its alphabet does
_START = r"(?<![A-Za-z0-9_-])"


def _token(body: str) -> re.Pattern[str]:
    return re.compile(_START + body + _END)


class AnthropicKeyDetector(RegexBasedDetector):
    secret_type = "Anthropic API Key"
    denylist = (_token(r"sk-ant-[a-z]{3,6}\d{2}-[A-Za-z0-9_-]{20,}"),)


class OpenAIProjectKeyDetector(RegexBasedDetector):
    """Project, service-account and admin keys: the built-in plugin knows only legacy keys."""

    secret_type = "OpenAI Project Key"
    denylist = (_token(r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}"),)


class GoogleApiKeyDetector(RegexBasedDetector):
    secret_type = "Google API Key"
    denylist = (_token(r"AIza[0-9A-Za-z_-]{35}"),)


class HuggingFaceTokenDetector(RegexBasedDetector):
    secret_type = "Hugging Face Token"
    denylist = (_token(r"hf_[A-Za-z]{34}"),)


class GitHubFineGrainedTokenDetector(RegexBasedDetector):
    secret_type = "GitHub Fine-Grained Token"
    denylist = (_token(r"github_pat_[A-Za-z0-9_]{60,}"),)


class NpmBareTokenDetector(RegexBasedDetector):
    """An npm token anywhere: the built-in plugin wants it inside an `.npmrc` line."""

    secret_type = "npm Access Token"
    denylist = (_token(r"npm_[A-Za-z0-9]{36}"),)


class DigitalOceanTokenDetector(RegexBasedDetector):
    secret_type = "DigitalOcean Token"
    denylist = (_token(r"do[opr]_v1_[a-f0-9]{64}"),)


class ShopifyTokenDetector(RegexBasedDetector):
    secret_type = "Shopify Token"
    denylist = (_token(r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"),)


class DockerHubTokenDetector(RegexBasedDetector):
    secret_type = "Docker Hub Token"
    denylist = (_token(r"dckr_pat_[A-Za-z0-9_-]{27,}"),)


class VaultTokenDetector(RegexBasedDetector):
    secret_type = "HashiCorp Vault Token"
    denylist = (_token(r"hv[sbr]\.[A-Za-z0-9_-]{24,}"),)


class AzureClientSecretDetector(RegexBasedDetector):
    secret_type = "Azure AD Client Secret"
    denylist = (re.compile(r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}"),)


class AzureSasSignatureDetector(RegexBasedDetector):
    secret_type = "Azure SAS Signature"
    denylist = (re.compile(r"[?&]sig=([A-Za-z0-9%+/]{30,}(?:%3[Dd]|=){0,2})"),)


class AwsBedrockKeyDetector(RegexBasedDetector):
    secret_type = "AWS Bedrock API Key"
    denylist = (_token(r"ABSK[A-Za-z0-9+/]{100,}={0,2}"),)


class TwilioAuthTokenDetector(RegexBasedDetector):
    """Twilio API key secrets and auth tokens sit beside a `TWILIO_*` name; the SID alone is
    the built-in plugin's."""

    secret_type = "Twilio Auth Token"
    denylist = (re.compile(r"(?i)twilio\w{0,20}\W{1,4}([a-f0-9]{32})" + _END),)


class EnvSecretAssignmentDetector(RegexBasedDetector):
    """`.env` and shell style: a secret-named variable given a bare value, which the built-in
    keyword plugin passes over unless the value is quoted."""

    secret_type = "Secret Environment Assignment"
    denylist = (
        re.compile(
            r"(?:^|[\s;])(?:export\s+)?[A-Z_][A-Z0-9_]*"
            r"(?:SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|APIKEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIALS?)"
            r"[A-Z0-9_]*=([^\s'\"`$<>;|&(){}\[\],]{8,})(?=\s|$)"
        ),
    )


class CommandLinePasswordDetector(RegexBasedDetector):
    """Passwords given to a command: `mysql -pPASS`, `sshpass -p PASS`, `curl -u user:pass`,
    `--password PASS`, `PGPASSWORD=PASS cmd`, `aws configure set aws_secret_access_key KEY`."""

    secret_type = "Command-Line Password"
    _value = r"""(?:'([^'\s]{4,})'|"([^"\s]{4,})"|([^\s'"`;|&<>]{4,}))"""
    denylist = (
        re.compile(r"\b(?:mysql|mysqldump|mysqladmin|mariadb)\b[^\n;|&]{0,200}?\s-p" + _value),
        re.compile(r"\bsshpass\s+-p\s*" + _value),
        re.compile(
            r"\baws\s+configure\s+set\s+\S*aws_(?:secret_access_key|session_token)\s+" + _value
        ),
        re.compile(r"\bcurl\b[^\n;|&]{0,200}?\s(?:-u|--user)[ =]?[^\s:'\"]{1,64}:" + _value),
        re.compile(r"(?i)--password[ =]" + _value),
        re.compile(r"\b(?:PGPASSWORD|MYSQL_PWD|SSHPASS)=" + _value),
    )
