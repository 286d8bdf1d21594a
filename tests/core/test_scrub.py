"""The scrubber against published scanner test cases, our own edge cases, and Claude Code records.

Published cases are copied from gitleaks' rule tests (cmd/generate/config/rules/<rule>.go, the
`tps` and `fps` lists; MIT) and Yelp detect-secrets' plugin tests (tests/plugins/<x>_test.py;
Apache-2.0). Each test id names its source; `own:` cases are ours. The case tables keep one case
per line, published literals as they are, hence no formatting and no line-length limit there.
"""

# ruff: noqa: E501

from __future__ import annotations

import json

import pytest

from pipeline.scrub import (
    PII_KINDS,
    PLACEHOLDER_RE,
    find_secrets,
    has_secret,
    scrub_cli_output,
    scrub_text,
    scrub_value,
)

# fmt: off
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
GL_JWT = "eyJhbGciOieeeiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwic3ViZSI6IjEyMzQ1Njc4OTAiLCJuYW1lZWEiOiJKb2huIERvZSIsInN1ZmV3YWZiIjoiMTIzNDU2Nzg5MCIsIm5hbWVmZWF3ZnciOiJKb2huIERvZSIsIm5hbWVhZmV3ZmEiOiJKb2huIERvZSIsInN1ZndhZndlYWIiOiIxMjM0NTY3ODkwIiwibmFtZWZ3YWYiOiJKb2huIERvZSIsInN1YmZ3YWYiOiIxMjM0NTY3ODkwIiwibmFtZndhZSI6IkpvaG4gRG9lIiwiaWZ3YWZhYXQiOjE1MTYyMzkwMjJ9.a_5icKBDo-8EjUlrfvz2k2k-FYaindQ0DEYNrlsnRG0"  # gitleaks jwt.go
RSA_BODY = "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEmo3qGy0t6z09AIJtH+5OeRV1be+N4cDYJKffGzDa88vQENZiRm0GRq6a+HPGQMd2kTQIhAKMSvzIBnni7ot/OSie2TmJLY4SwTQAevXysE2RbFDYdAiEBCUEaRQnMnbp79mxDXDf6AU0cN/RPBjb9qSHDcWZHGzUCIG2Es59z8ugGrDY+pxLQnwfotadxd+Uyv/Ow5T0q5gIJAiEAyS4RaI9YG8EWx/2w0T67ZUVAw8eOMB6BIUg0Xcu+3okCIBOs/5OiPgoTdSy7bcF9IGpSE8ZgGKzgYQVZeN97Y=="  # gitleaks privatekey.go
DS_PEM = "c3VwZXIgZHVwZXIgc2VjcmV0IHBhc3N3b3JkLCBzdXBlciBkdXBlciBzZWNyZXQgcGFzc3dvcmQhMTIzNCMkJQpzdXBlciBkdXBlciBzZWNyZXQgcGFzc3dvcmQsIHN1cGVyIGR1cGVyIHNlY3JldCBwYXNzd29yZCExMjM0IyQlCgo="  # detect-secrets private_key_test.py
ANT = "sk-ant-api03-abc123xyz-456def789ghij-klmnopqrstuvwx-3456yza789bcde-1234fghijklmnopby56aaaogaopaaaabc123xyzAA"  # gitleaks anthropic.go
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # AWS's docs example; detect-secrets flags it

# (source, text, secret that must not survive, kind of the finding covering it)
POSITIVES = [
    ("gitleaks:anthropic:api03", ANT, ANT, "anthropic_key"),
    ("gitleaks:anthropic:admin01", "sk-ant-admin01-abc12fake-456def789ghij-klmnopqrstuvwx-3456yza789bcde-12fakehijklmnopby56aaaogaopaaaabc123xyzAA", "abc12fake-456def789ghij", "anthropic_key"),
    ("detect-secrets:openai:legacy", "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", "Xi8tcNiHV9awbCcvilTeT3BlbkFJ", "openai_key"),
    ("detect-secrets:openai:proj", "sk-proj-Xi8tdMjHV6pmbBbwilTeT3BlbkFJ3UDnpdEwNNm6wVBpYM0o", "Xi8tdMjHV6pmbBbwilTeT3BlbkFJ", "openai_key"),
    ("gitleaks:openai:svcacct", "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", "0Zkr4NUd4f_6LkfHfi3LlC8xKZQ", "openai_key"),
    ("gitleaks:openai:admin", "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", "JWARXiHjpLXSh6W_0pFGb3sW7yr0", "openai_key"),
    ("gitleaks:aws:tp", "AKIALALEMEL33243OLIB", "AKIALALEMEL33243OLIB", "aws_access_key_id"),
    ("detect-secrets:aws_key:flag", "AKIAZZZZZZZZZZZZZZZZ", "AKIAZZZZZZZZZZZZZZZZ", "aws_access_key_id"),
    ("detect-secrets:aws_secret:some_secret_key", "some_secret_key=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", "DcCc9H6oCkGUSp3Rhmsx8NIfVG8kO2T", "aws_secret_access_key"),
    ("detect-secrets:aws_secret:secret", f"secret  =   {AWS_SECRET}", AWS_SECRET, "aws_secret_access_key"),
    ("detect-secrets:aws_secret:garbage", f"someGarbageInfront aws_secret: {AWS_SECRET}", AWS_SECRET, "aws_secret_access_key"),
    ("detect-secrets:aws_secret:thingy", f"aws_thingy:{AWS_SECRET}", AWS_SECRET, "aws_secret_access_key"),
    ("detect-secrets:github_token:ghp", "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", "wWPw5k4aXcaT4fNP0UcnZwJUVFk6LO0pINUx", "github_token"),
    ("gitleaks:huggingface:cli", "huggingface-cli login --token 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", "jCBaQngSHiHDRYOcsMcifUcysGyaiybUWz", "hf_token"),
    ("gitleaks:huggingface:bearer", '-H "Authorization: Bearer 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"', "cYfJAwnBfGcKRKxGwyGItlQlRSFYCLphgG", "hf_token"),
    ("gitleaks:huggingface:inline-env", "DEV=1 HF_TOKEN=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 poetry run python app.py", "QNqXrtFihRuySZubEgnUVvGcnENCBhKgGD", "hf_token"),
    ("gitleaks:huggingface:kwarg", "use_auth_token='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')", "orMVXjZqzCQDVkNyxTHeVlyaslnzDJisex", "hf_token"),
    ("gitleaks:huggingface:argparse", """    parser.add_argument("--hf_token", type=str, default='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', help="Hugging Face Access Token to access PyAnnote gated models")""", "RdeidRutJuADoVDqPyuIodVhcFnZIqXAfb", "hf_token"),
    ("gitleaks:privatekey:rsa", f"-----BEGIN RSA PRIVATE KEY-----\n{RSA_BODY}\n-----END RSA PRIVATE KEY-----\n", RSA_BODY[:40], "private_key"),
    ("detect-secrets:private_key:json", json.dumps(f"-----BEGIN RSA PRIVATE KEY-----\n{DS_PEM[:58]}\n{DS_PEM[58:]}\n-----END RSA PRIVATE KEY-----"), DS_PEM[60:100], "private_key"),
    ("detect-secrets:private_key:plain", f"some text here\n-----BEGIN PRIVATE KEY-----\n{DS_PEM}\n-----END PRIVATE KEY-----", DS_PEM[:40], "private_key"),
    ("detect-secrets:jwt:valid", JWT, JWT, "jwt"),
    ("detect-secrets:jwt:no-signature", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ", "eyJzdWIiOiIxMjM0NTY3ODkw", "jwt"),
    ("detect-secrets:jwt:crlf-header", "eyJ0eXAiOiJKV1QiLA0KImFsZyI6IkhTMjU2In0.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ", "eyJ0eXAiOiJKV1Qi", "jwt"),
    ("gitleaks:jwt:assignment", f"JWT := {GL_JWT}", GL_JWT, "jwt"),
    ("gitleaks:jwt:url", "https://dai2-playlistserver.aws.syncbak.com/cpl/20980038/dai2v5/1.0/master.m3u8?access_token=" + JWT, JWT, "jwt"),
    ("gitleaks:jwt:json-bearer", f'"Authorization": "Bearer {JWT}"', JWT, "jwt"),
    ("gitleaks:curl:uuid", "curl --header  'Authorization:  5eb4223e-5008-46e5-be67-c7b8f2732305'", "5eb4223e-5008-46e5-be67-c7b8f2732305", "bearer_token"),
    ("gitleaks:curl:basic", "curl -H 'Authorization: Basic YnJvd3Nlcjo=' \\", "YnJvd3Nlcjo=", "bearer_token"),
    ("gitleaks:curl:basic-long", 'curl -k -X POST --header "Authorization: Basic djJlNEpYa0NJUHZ5a2FWT0VRXzRqZmZUdDkwYTp2emNBZGFzZWpmlWZiUDc2VUJjNDNNVDExclVh" "https://api-qa.example.com:8243/token" -d "grant_type=client_credentials"', "djJlNEpYa0NJUHZ5a2FWT0VRXz", "bearer_token"),
    ("gitleaks:curl:bearer-hex", '# curl -X GET "http://localhost:3000/api/cron/status" -H "Authorization: Bearer cfcabd11c7ed9a41b1a3e063c32d5114"', "cfcabd11c7ed9a41b1a3e063c32d5114", "bearer_token"),
    ("gitleaks:curl:bearer-openai", 'curl https://api.openai.com/v1/chat/completions \\\n  -H "Content-Type: application/json" \\\n  -H "Authorization: Bearer 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" \\', "HxsVRClzUoqDGsfVeTJOT3BlbkFJ", "openai_key"),
    ("gitleaks:curl:bearer-underscore", 'curl -X GET "https://api.cloudflare.com/client/v4/user/tokens/verify" \\\n     -H "Authorization: Bearer _FXNljbSRYMWx3TWrd7lgKhLtVZX6iskC8Wcbb4b" \\\n     -H "Content-Type:application/json"', "_FXNljbSRYMWx3TWrd7lgKhLtVZX6iskC8Wcbb4b", "bearer_token"),
    ("gitleaks:curl:bearer-sha256", 'curl -H "Authorization: Bearer sha256~bRLFnzd59Z3XpZH5_seJPHALOuvbWiKwbFKSsoALkgp"', "bRLFnzd59Z3XpZH5_seJPHALOuvbWiKwbFKSsoALkgp", "bearer_token"),
    ("gitleaks:curl:no-prefix", 'curl -L -H "Authorization: sha256~bRLFnzd5@=-.a+/hgdS"', "bRLFnzd5@=-.a+/hgdS", "bearer_token"),
    ("gitleaks:curl:api-token", 'curl -H "Authorization: Api-Token 22cb987851bc5659l29114c62e60c79abd0d2c08" --request PUT https://appsecclass.report/api/use/635', "22cb987851bc5659l29114c62e60c79abd0d2c08", "bearer_token"),
    ("gitleaks:curl:apikey-header", 'curl -X GET \\\n     -H "apikey: c4ed6c21-9dd5-4a05-8e3f-c56d1151cce8" \\\n     -H "Accept: application/json" \\', "c4ed6c21-9dd5-4a05-8e3f-c56d1151cce8", "env_value"),
    ("gitleaks:curl:api-token-header", 'curl -X POST --header "Api-Token: Sk94HG7f6KB"', "Sk94HG7f6KB", "env_value"),
    ("gitleaks:curl:token-header", 'curl -XPOST http://localhost:8080/api/tasks -H "Content-Type: application/x-www-form-urlencoded; charset=UTF-8" -H "Token: 3fea6af1349166ea" -d "content=hello-curl"', "3fea6af1349166ea", "env_value"),
    ("gitleaks:curl:x-apikey", 'curl -X GET https://octopus.corp.net/\n     -H "X-Octopus-ApiKey: 3a16750d-d363-41a4-8ebd-035408f7730f" \\', "3a16750d-d363-41a4-8ebd-035408f7730f", "env_value"),
    ("gitleaks:generic:access_token", "'access_token': 'eyJ0eXAioiJKV1slS3oASx=='", "eyJ0eXAioiJKV1slS3oASx==", "env_value"),
    ("gitleaks:generic:user_auth", '"user_auth": "am9obmRvZTpkMDY5NGIxYi1jMTcxLTQ4ODYt+TMyYS0wMmUwOWQ1/mIwNjc="', "am9obmRvZTpkMDY5NGIxYi1jMTcx", "env_value"),
    ("gitleaks:generic:credentials", '"credentials" : "0afae57f3ccfd9d7f5767067bc48b30f719e271ba470488056e37ab35d4b6506"', "0afae57f3ccfd9d7f5767067bc48b30f719e271ba470488056e37ab35d4b6506", "env_value"),
    ("gitleaks:generic:creds", "creds = Zf3D0LXCM3EIMbgJpUNnkRtOfOueHznB", "Zf3D0LXCM3EIMbgJpUNnkRtOfOueHznB", "env_value"),
    ("gitleaks:generic:client_secret", '"client_secret" : "6da89121079f83b2eb6acccf8219ea982c3d79bccc3e9c6a85856480661f8fde",', "6da89121079f83b2eb6acccf8219ea982c3d79bccc3e9c6a85856480661f8fde", "env_value"),
    ("gitleaks:generic:mySecretString", "mySecretString=Zf3D0LXCM3EIMbgJpUNnkRtOfOueHznB", "Zf3D0LXCM3EIMbgJpUNnkRtOfOueHznB", "env_value"),
    ("gitleaks:generic:todo_secret", "todo_secret_do_not_commit = Zf3D0LXCM3EIMbgJpUNnkRtOfOueHznB", "Zf3D0LXCM3EIMbgJpUNnkRtOfOueHznB", "env_value"),
    ("detect-secrets:basic_auth:url", "https://username:password@yelp.com", ":password@", "url_password"),
    ("detect-secrets:email:plain", "user@example.com", "user@example.com", "email"),
    ("detect-secrets:email:dots", "user.name@example.com", "user.name@example.com", "email"),
    ("detect-secrets:email:underscore", "user_name@example.com", "user_name@example.com", "email"),
    ("detect-secrets:email:hyphen", "user-name@example.com", "user-name@example.com", "email"),
    ("detect-secrets:email:plus", "user+name@example.com", "user+name@example.com", "email"),
    ("detect-secrets:email:domain-underscore", "user@ex_ample.com", "user@ex_ample.com", "email"),
    ("detect-secrets:email:domain-lead-hyphen", "user@-example.com", "user@-example.com", "email"),
    ("detect-secrets:email:domain-trail-hyphen", "user@example-.com", "user@example-.com", "email"),
    ("detect-secrets:email:category", "user.name+category@example.com", "user.name+category@example.com", "email"),
    ("detect-secrets:email:in-sentence", "This is an email address: user@example.com", "user@example.com", "email"),
    ("detect-secrets:email:sentence-start", "user@example.com is a valid email address", "user@example.com", "email"),
    ("detect-secrets:email:gmail", "user@gmail.com", "user@gmail.com", "email"),
    ("detect-secrets:email:yahoo", "user@yahoo.com", "user@yahoo.com", "email"),
    ("detect-secrets:email:hotmail", "user@hotmail.com", "user@hotmail.com", "email"),
]
# Own cases: the formats the brief names that the published suites leave out.
POSITIVES += [
    ("own:github:oauth", "gho_16C7e42F292c6912E7710c838347Ae178B4a", "16C7e42F292c6912E7710c838347Ae178B4a", "github_token"),
    ("own:github:fine-grained", "github_pat_11ABCDEFG0123456789abc_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", "11ABCDEFG0123456789abc", "github_token"),
    ("own:anthropic:oauth", "CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-Q7xv9LmN2pR4tY6wZ8bC1dF3gH5jK7mP9qS2uV4xA6zB8cD0eF", "Q7xv9LmN2pR4tY6wZ8bC1dF3gH5jK7mP9qS2uV4xA6zB8cD0eF", "anthropic_key"),
    ("own:env:export", "export DB_PASSWORD='s3cr3t-Pa55word!'", "s3cr3t-Pa55word!", "env_value"),
    ("own:env:printenv", "HOME=/home/dev\nSTRIPE_SECRET_KEY=rk_live_51HxQ2dK8s7\nLANG=C.UTF-8", "rk_live_51HxQ2dK8s7", "stripe_access_token"),
    ("own:env:dotenv-letters", "SESSION_SECRET=correcthorsebatterystaple", "correcthorsebatterystaple", "env_value"),
    ("own:env:yaml", "database:\n  password: hunter22\n  host: db", "hunter22", "env_value"),
    ("own:env:query", "GET /cb?state=x&access_token=4f8a9b2c7d1e6f30&scope=read", "4f8a9b2c7d1e6f30", "env_value"),
    ("own:env:camel-case", 'const config = { apiKeyValue: "a8f5f167f44f4964e6c998dee827110c" };', "a8f5f167f44f4964e6c998dee827110c", "env_value"),
    ("own:env:bytes-literal", 'SECRET_KEY = b"9f86d081884c7d659a2f"', "9f86d081884c7d659a2f", "env_value"),
    ("own:env:aws-credentials-file", f"[default]\naws_secret_access_key = {AWS_SECRET}", AWS_SECRET, "aws_secret_access_key"),
    ("own:bearer:lowercase", "authorization: bearer 9f86d081884c7d659a2feaa0c55ad015", "9f86d081884c7d659a2feaa0c55ad015", "bearer_token"),
    ("own:url:postgres", "postgres://app:Xq9v2LmP@db.internal:5432/app", "Xq9v2LmP", "url_password"),
    ("own:url:redis-no-user", "redis://:Xq9v2LmP@cache:6379/0", "Xq9v2LmP", "url_password"),
    ("own:private-key:truncated", f"$ cat id_rsa\n-----BEGIN OPENSSH PRIVATE KEY-----\n{RSA_BODY[:70]}\n{RSA_BODY[70:140]}\n[output truncated]", RSA_BODY[70:140], "private_key"),
    ("own:email:mailto", "<a href='mailto:dana.berg@example.org'>", "dana.berg@example.org", "email"),
    ("own:phone:e164", "Call +14155552671 after 5pm", "+14155552671", "phone"),
    ("own:phone:intl-spaced", "+44 20 7946 0958", "7946 0958", "phone"),
    ("own:phone:intl-trunk", "Tel. +49 (0)30 1234567", "1234567", "phone"),
    ("own:phone:fr-intl", "+33 6 12 34 56 78", "12 34 56 78", "phone"),
    ("own:phone:us-paren", "(415) 555-0123", "555-0123", "phone"),
    ("own:phone:us-dashed", "415-555-0123", "415-555-0123", "phone"),
    ("own:phone:us-dotted", "phone: 415.555.0123.", "415.555.0123", "phone"),
    ("own:phone:us-1", "1-800-555-1234", "800-555-1234", "phone"),
    ("own:phone:de-national", "Telefon 030 1234567", "030 1234567", "phone"),
    ("own:phone:uk-national", "020 7946 0958", "7946 0958", "phone"),
    ("own:phone:fr-national", "06 12 34 56 78", "12 34 56 78", "phone"),
    ("own:phone:sample-workspace", "ONCALL_PHONE=+1 415 555 0142", "555 0142", "phone"),
]

# (source, text): nothing at all is found.
NEGATIVES = [
    ("gitleaks:anthropic:oat-too-short", "sk-ant-oat01-tooShort"),
    ("gitleaks:aws:lowercase", 'msgstr "Näytä asiakirjamallikansio."'),
    ("detect-secrets:aws_key:lowercase", "akiazzzzzzzzzzzzzzzz"),
    ("detect-secrets:aws_key:short", "AKIAZZZ"),
    ("detect-secrets:aws_secret:identifier", "aws_secret_access_key: not_secret_key"),
    ("detect-secrets:aws_secret:other-name", "some_other_40_char_base64_str: pARhvm1GmHyvLydUtFNCCMIIu4VEyaZNo9MbR3IJ"),
    ("detect-secrets:github_token:prefix", "foo_wWPw5k4aXcaT4fNP0UcnZwJUVFk6LO0pINUx"),
    ("detect-secrets:github_token:word", "foo"),
    ("gitleaks:huggingface:objc", "- (id)hf_requiredCharacteristicTypesForDisplayMetadata;"),
    ("gitleaks:huggingface:css", 'amazon.de#@#div[data-cel-widget="desktop-rhf_SponsoredProductsRemoteRHFSearchEXPSubsK2ClickPagination"]'),
    ("gitleaks:huggingface:symbol", "                            _kHMSymptomhf_generatedByHomeAppForDebuggingPurposesKey,"),
    ("gitleaks:huggingface:define", "    #define OSCHF_DebugGetExpectedAverageCrystalAmplitude NOROM_OSCHF_DebugGetExpectedAverageCrystalAmplitude"),
    ("gitleaks:huggingface:c-macro", "  M_UINT       (ServingCellPriorityParametersDescription_t,  H_PRIO,  2, &hf_servingcellpriorityparametersdescription_h_prio),"),
    ("gitleaks:huggingface:fastq", "+HWI-ST565_0092:4:1101:5508:5860#ACTTGA/1\n\t\tbb_eeeeegfgffhiiiiiiiiiiihiiiiicgafhf_eefghihhiiiifhifhhdhifhiiiihifdgdhggf\\bbceceedbcd\n\t\t@HWI-ST565_0092:4:1101:7621:5770#ACTTGA/1"),
    ("gitleaks:huggingface:glob", "                    change_dir(cwd)\n\t\tsubdirs = glob.glob('HF_CAASIMULIAComputeServicesBuildTime.HF*.Linux64')\n\t\tif len(subdirs) == 1:"),
    ("gitleaks:huggingface:masked-default", '        os.environ.get("HF_AUTH_TOKEN",\n\t\t"hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),'),
    ("gitleaks:huggingface:masked-env", "# HuggingFace API Token https://huggingface.co/settings/tokens\n\t\tHUGGINGFACE_API_TOKEN=hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx,"),
    ("gitleaks:curl:placeholder-x", 'curl https://example.com/micropub -d h=entry -d "content=Hello World" -H "Authorization: Bearer XXXXXXXXXXXX"'),
    ("gitleaks:curl:elided", 'curl -X POST https://accounts.spotify.com/api/token -d grant_type=client_credentials --header "Authorization: Basic ..."'),
    ("gitleaks:curl:angle", 'curl \\\n  -H "Authorization: Bearer <Openverse API token>" \\\n  "https://api.openverse.org/v1/audio/?q=test"'),
    ("gitleaks:curl:stars", 'curl -v -v -v -X POST https://domain/api/v1/authentication/sso/login-url/ \\\n  -H \'Content-Type: application/json\' \\\n  -H "Authorization: Token **********" \\\n  -d \'{"username": "test", "next": "/luna/"}\''),
    ("gitleaks:curl:expression", 'curl -XPOST http://localhost:8080/api/token -H "Authorization: basic {base64(email:password[\\n])}" => token'),
    ("gitleaks:curl:apikey-variable", 'curl -X GET \\\n     -H "apikey: $API_KEY" \\\n     -H "Accept: $FORMAT" \\\n"$API_URL/rest/v1/stats_derniere_labellisation"'),
    ("gitleaks:curl:bearer-variable", '$ curl -X POST "http://localhost:8000/v1/chat/completions" \\\n    -H "Content-Type: application/json" \\\n    -H "Authorization: Bearer $API_KEY" \\\n    -d \'{\n        "model": "chatglm3-6b-32k",\n        "messages": [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Hello!"}]\n    }\''),
    ("gitleaks:curl:bearer-command", 'curl -X GET -H "Content-Type: application/json" -H "Authorization: Bearer $(gcloud auth print-access-token)" https://workflowexecutions.googleapis.com/v1/projects/244283331594/locations/us-central1/workflows/sample-workflow/executions/43c925aa-514a-44c1-a0a4-a9f8f26fd2cb/callbacks/1705791f-d446-4e92-a6d0-a13622422e80_31864a51-8c13-4b03-ad4d-945cdc8d0631'),
    ("gitleaks:generic:terraform", "client_vpn_endpoint_id = aws_ec2_client_vpn_endpoint.client-vpn-endpoint.id"),
    ("gitleaks:generic:prose", "password combination.\n\nR5: Regulatory--21"),
    ("gitleaks:generic:accessor", '"accessor":"rA1wk0Y45YCufyfq",'),
    ("gitleaks:generic:access_id", "report_access_id: e8e4df51-2054-49b0-ab1c-516ac95c691d"),
    ("gitleaks:generic:api-version", "COMMUNICATION_API_VERSION=rc0.13.0_20230412_0712-SNAPSHOT"),
    ("gitleaks:generic:exchange-header", "X-MS-Exchange-Organization-AuthSource: sm02915.int.contoso.com"),
    ("gitleaks:generic:auth-results", "Authentication-Results: 5h.ca.iphmx.com"),
    ("gitleaks:generic:credentialsId", "credentialsId: 'ff083f76-7804-4ef1-80e4-fe975bb9141b'"),
    ("gitleaks:generic:credentialId", '  "credentialId": "B9mTcFSck2LzJO2S3ols63",'),
    ("gitleaks:generic:credentials-id", 'environment {\n\tCREDENTIALS_ID = "K8S_CRED"\n}'),
    ("gitleaks:generic:credentials-url", "dev.credentials.url=dev-lb1.api.f4ke.com:5215"),
    ("gitleaks:generic:keyword", 'keyword: "Befaehigung_P2"'),
    ("gitleaks:generic:public_key", 'public_key = "9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit"'),
    ("gitleaks:generic:pubkey", "pub const X509_pubkey_st = struct_X509_pubkey_st;"),
    ("gitleaks:generic:primaryKey", "primaryKey=a9Zk2Lq8Wm4Xn7Rb3Tc6Yd1Vf5Hg0Jp2"),
    ("gitleaks:generic:foreignKey", "foreignKey=a9Zk2Lq8Wm4Xn7Rb3Tc6Yd1Vf5Hg0Jp2"),
    ("gitleaks:generic:key_down_event", "key_down_event=a9Zk2Lq8Wm4Xn7Rb3Tc6Yd1Vf5Hg0Jp2"),
    ("gitleaks:generic:issuerKeyHash", "issuerKeyHash=a9Zk2Lq8Wm4Xn7Rb3Tc6Yd1Vf5Hg0Jp2"),
    ("gitleaks:generic:xml-entry", '<entry key="jetbrains.mps.v8_elimination" value="executed" />'),
    ("gitleaks:generic:keyfile", "IceSSL.KeyFile=s_rsa1024_priv.pem"),
    ("gitleaks:generic:bucket_key", '"bucket_key": "SalesResults-1.2"'),
    ("gitleaks:generic:schemaKey", "schemaKey = 'DOC_Vector_5_32'"),
    ("gitleaks:generic:sequenceKey", 'sequenceKey = "18"'),
    ("gitleaks:generic:keystore", "app.keystore.file=env/cert.p12"),
    ("gitleaks:generic:keytab", "-DKEYTAB_FILE=/tmp/app.keytab"),
    ("gitleaks:generic:key_name", '                                "key_name": "prod5zyxlmy-cmk",'),
    ("gitleaks:generic:kms_key_id", '                                "kms_key_id": "555ea4a3-d53a-4412-9c66-3a7cb667b0d6",'),
    ("gitleaks:generic:key_vault_name", '\t"key_vault_name": "web21prqodx24021",'),
    ("gitleaks:generic:validKeyChars", 'const validKeyChars = "0123456789abcdefghijklmnopqrstuvwxyz_-."'),
    ("gitleaks:generic:keyStr", 'const keyStr = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"'),
    ("gitleaks:generic:key_length", "key_length = XSalsa20.key_length"),
    ("gitleaks:generic:KeyPair", "KeyPair = X25519.KeyPair"),
    ("gitleaks:generic:keyPressed", "            keyPressed = kVK_Return.u16"),
    ("gitleaks:generic:turkey", 'timezone_mapping = {\n    "Turkey Standard Time": "Europe/Istanbul",\n}'),
    ("gitleaks:generic:putty", "PuttyPassword=0"),
    ("gitleaks:generic:user-secrets-id", "  <UserSecretsId>79a3edd0-2092-40a2-a04d-dcb46d5ca9ed</UserSecretsId>"),
    ("gitleaks:generic:secret_length", "secret_length = X25519.secret_length"),
    ("gitleaks:generic:secretSize", "secretSize must be >= XXH3_SECRET_SIZE_MIN"),
    ("gitleaks:generic:docker-secret", "# get build time secret for authentication\n#RUN --mount=type=secret,id=jfrog_secret \\\n#    JFROG_SECRET = $(cat /run/secrets/jfrog_secret) && \\"),
    ("gitleaks:generic:token-url", "    access_token_url='https://github.com/login/oauth/access_token',"),
    ("gitleaks:generic:publicToken", 'publicToken = "9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit"'),
    ("gitleaks:generic:token-file", '<SourceFile SourceLocation="F:\\Extracts\\" TokenFile="RTL_INST_CODE.cer">'),
    ("gitleaks:generic:maven", 'notes            = "Maven - io.jsonwebtoken:jjwt-jackson-0.11.2"'),
    ("gitleaks:generic:csrf", "csrf-token=Mj2qykJO5rELyHgezQ69nzUX0i3OH67V7+V4eUrLfpuyOuxmiW9rhROG/Whikle15syazJOkrjJa3U2AbhIvUw=="),
    ("gitleaks:generic:clientId", 'clientId = "73082700-1f09-405b-80d0-3131bfd6272d"'),
    ("gitleaks:generic:empty-env", "GITHUB_API_KEY=\nDYNATRACE_API_KEY="),
    ("gitleaks:generic:empty-props", "snowflake.password=\njdbc.snowflake.url="),
    ("gitleaks:generic:import", "import { chain_Anvil1_Key, chain_Anvil2_Key } from '../blockchain-tests/pallets/supported-chains/consts';"),
    ("gitleaks:generic:srcrev", 'SRCREV_moby = "43fc912ef59a83054ea7f6706df4d53a7dea4d80"'),
    ("detect-secrets:keyword:empty-dq", 'my_password = ""'),
    ("detect-secrets:keyword:empty-sq", "my_password = ''"),
    ("detect-secrets:keyword:default-arg", 'open(self, password = ""):'),
    ("detect-secrets:keyword:some_key", 'some_key = "real_secret"'),
    ("detect-secrets:keyword:call", "my_password = foo(hey)you"),
    ("detect-secrets:keyword:subscript", "my_password = request.json_body['hey']"),
    ("detect-secrets:keyword:true", "my_password = True"),
    ("detect-secrets:keyword:kwarg", "login(username=username, password=password)"),
    ("detect-secrets:keyword:template", "password: ${link}"),
    ("detect-secrets:keyword:empty-colon", 'theapikey: ""'),
    ("detect-secrets:keyword:js-this", "apiKey: this.apiKey,"),
    ("detect-secrets:keyword:js-call", "apiKey: fs.readFileSync('foo',"),
    ("detect-secrets:keyword:php", "$password = $input;"),
    ("detect-secrets:jwt:decoded", '{"alg":"HS256","typ":"JWT"}.{"name":"Jon Doe"}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c'),
    ("detect-secrets:jwt:not-json", "bm90X3ZhbGlkX2pzb25fYXRfYWxs.bm90X3ZhbGlkX2pzb25fYXRfYWxs.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"),
    ("detect-secrets:jwt:header-only", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"),
    ("detect-secrets:jwt:word", "jwt"),
    ("detect-secrets:jwt:short-a", "eyJAAAA.eyJBBB"),
    ("detect-secrets:jwt:short-b", "eyJBB.eyJCC.eyJDDDD"),
    ("detect-secrets:basic_auth:erb", "http://localhost:5000/<%= @variable %>"),
    ("detect-secrets:email:no-dot", "user@com"),
    ("detect-secrets:email:no-local", "@example.com"),
    ("detect-secrets:email:empty-label", "user@.com"),
    ("detect-secrets:email:double-dot", "user@ex..com"),
    ("detect-secrets:email:noreply", "noreply@github.com"),
    ("detect-secrets:email:git", "git@github.com"),
]
# Own cases: words, placeholders, code and identifiers that sessions are full of.
NEGATIVES += [
    ("own:sk-in-words", "Use the task-manager and disk-usage tools; it is risk-free. pip install scikit-learn"),
    ("own:sk-hyphenated-words", "--sk-learn-style-option-name-for-testing"),
    ("own:password-prose", "Enter your password: it must be at least 12 characters.\nThe password field is required."),
    ("own:token-prose", "Bearer authentication sends a token; the API key rotates weekly."),
    ("own:placeholder-your", "OPENAI_API_KEY=YOUR_API_KEY\nSECRET_KEY=your-secret-key-here"),
    ("own:placeholder-variable", "export GITHUB_TOKEN=${TOKEN}\nexport NPM_TOKEN=$(cat ~/.npm-token)"),
    ("own:placeholder-angle", "Authorization: Bearer <token>\ntoken = '<your-token>'"),
    ("own:placeholder-masked", "API_KEY=xxxxxxxxxxxxxxxx\nPASSWORD=********"),
    ("own:placeholder-changeme", "password: changeme\nelastic_password=changeme"),  # public defaults
    ("own:placeholder-template", 'api_key: "${{ secrets.API_KEY }}"\npassword: "{{ vault_db_password }}"'),
    ("own:code-python", 'client = anthropic.Anthropic(api_key=os.environ["ANTHROPIC_API_KEY"])\ndef login(username: str, password: str) -> Token:\n    token = get_token()\n    if token == expected_token:\n        headers = {"Authorization": f"Bearer {token}"}\n    self.api_key = api_key\n    secret_key=settings.SECRET_KEY'),
    ("own:code-llm", "resp = client.messages.create(model=m, max_tokens=1024)\ntokenizer = AutoTokenizer.from_pretrained(name)\ncache_key = f'{user}:{page}'"),
    ("own:code-tokenizer", 'bos_token="[CLS]", eos_token="</s>", token_ids_0=token_ids_0, samples_per_token=1920\n_decoder_start_token_tensor: "torch.Tensor | None"\nMETADATA_KEY_STUB = "dagster/auto_created_stub_asset"'),
    ("own:usage-json", '{"usage": {"input_tokens": 1200, "cache_read_input_tokens": 88, "output_tokens": 300}}'),
    ("own:printenv-benign", "PWD=/home/dev/app\nOLDPWD=/home/dev\nSSH_AUTH_SOCK=/tmp/ssh-XXXXabcd/agent.123\nTOKENIZERS_PARALLELISM=false\nXAUTHORITY=/run/user/1000/gdm/Xauthority\nGIT_AUTHOR_NAME=Dana\nAWS_REGION=us-east-1\nAWS_PROFILE=dev"),
    ("own:urls", "postgres://localhost:5432/app\nhttps://docs.example.com/a:b\nredis://:${REDIS_PASSWORD}@redis:6379"),
    ("own:ids", "commit 3f786850e387550fdab836ed7e6dc881de23001b (a1b2c3d)\nrequest 123e4567-e89b-12d3-a456-426614174000\n0x7ffee4b3c9a8 deadbeef"),
    ("own:numbers", "v2.14.0-rc.1 10.0.19041.1 on 2024-01-15, 15.01.2024, 01/15/2024 at 10:30:00.123\n2024-01-15T10:30:00+05:30 and Mon Jan 15 10:30:00 2024 +0000 epoch 1700000000123"),
    ("own:addresses", "192.168.1.1 10.0.0.255:8080 2001:db8::1 port 5432"),
    ("own:positions", "src/app.py:123:45: E501 line too long\nfile.ts(12,34)\n   12→import os\n== 3 passed in 0.12s =="),
    ("own:counts", "1 234 567 rows, +100.00% growth, 12345678-1234-1234-1234-123456789012"),
    ("own:code-escapes-and-regexes", '_CONTROL_TOKEN_START = "\\U000f0000"\n_EXPERT_KEY = r"layers\\.(\\d+)\\.ffn\\.experts"'),
    ("own:signed-decimals", "array([+1.        +1.j        , +1.12345679+1.12345679j])"),
    ("own:dumps", "04 154 00 00 00 00 00 127\n# 00 01 02 03 04 05 06 07 | 08 09 10 11"),
    ("own:email-lookalikes", "git@github.com:org/repo.git\nCo-Authored-By: Claude <noreply@anthropic.com>\nnpm i react@18.2.0 @types/node\n@pytest.fixture\nicon@2x.png user@localhost\n12345+dana@users.noreply.github.com"),
    ("own:private-key-marker", 'if line.startswith("-----BEGIN RSA PRIVATE KEY-----"):'),
]

# Published negatives we scrub on purpose: a scrubber's miss leaks, its false hit blanks a word.
DIVERGENCES = [
    # A truncated or wrongly suffixed key is still most of a key.
    ("gitleaks:anthropic:too-short", "sk-ant-api03-abc123xyz-456de-klMnopqrstuvwx-3456yza789bcde-1234fghijklmnopAA"),
    ("gitleaks:anthropic:wrong-suffix", "sk-ant-api03-abc123xyz-456def789ghij-klmnopqrstuvwx-3456yza789bcde-1234fghijklmnopby56aaaogaopaaaabc123xyzBB"),
    ("detect-secrets:openai:no-marker", "sk-proj-Xi8tdMjHV6pmbBbwilTeT4BlbkFJ3UDnpdEwNNm6wVBpYM0o"),
    # JWT-shaped is enough; we do not decode: a damaged header is still a token-like string.
    ("detect-secrets:jwt:bad-json", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"),
    ("detect-secrets:jwt:random-bytes", "eyJhbasdGciOiJIUaddasdasfsasdasdzI1NiIasdsInR5cCI6IkpXVCasdJasd9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"),
    ("gitleaks:curl:basic-jwt", 'curl -X POST -H "Content-Type: application/json" -H "Authorization: Basic eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJjb25maWRlbmNlIjowLjh9.kvRPfjAhLhtRTczoRgctVGp7KY1QVH3UBZM-gM0x8ec" \\'),
    # A token-named literal assignment: the Anthropic rule passes it, env_value takes it.
    ("gitleaks:anthropic:oat-assignment", 'anthropic_token = "sk-ant-oat01-tooShort"'),
    # Quoted values after secret-sounding names that the blocking check's scanner flags: left
    # in, they would block the night, so the scrubber judges them as that scanner does.
    ("gitleaks:generic:jenkins", "withCredentials([usernamePassword(credentialsId: '29f63271-dc2f-4734-8221-5b31b5169bac', usernameVariable: 'USERNAME', passwordVariable: 'PASSWORD')]) {"),
    ("gitleaks:generic:secret-name", 'LLM_SECRET_NAME = "NEXUS-GPT4-API-KEY"'),
    ("detect-secrets:keyword:fake", 'my_password = "fakesecret"'),
    ("detect-secrets:keyword:fake-colon", 'theapikey: "somefakekey"'),
    # AWS key id shapes the blocking check's scanner flags wherever they stand, placeholders and
    # DNA included (it has no boundary and no allowlist): scrubbed for the same reason.
    ("gitleaks:aws:low-entropy", "key = AKIAXXXXXXXXXXXXXXXX"),
    ("gitleaks:aws:placeholder", "aws_access_key: AKIAIOSFODNN7EXAMPLE"),
    ("gitleaks:aws:wrong-length", "TODAYINASIAASACKOFRICEFELLOVER"),
    ("gitleaks:aws:dna", "CTTCATAGGGTTCACGCTGTGTAAT-ACG--CCTGAGGC-CACA-AGGGGACTTCAGCAACCGTCGGG-GATTC-ATTGCCA-A--TGGAAGCAATC-TA-TGGGTTA-TCGCGGAGTCCGCAAAGACGGCCAGTATG-AAGCAGATTTCGCAC-CAATGTGACTGCATTTCGTG-ATCGGGGTAAGTA-TC-GCCGATTC-GC--CCGTCCA-AGT-CGAAG-TA--GGCAATATAAAGCTGC-CATTGCCGAAGCTATCTCGCTA-TACTTGAT-AATCGGCGG-TAG-CACAG-GTCGCAGTATCG-AC-T--AGG-CCTCTCAAAAGTT-GGGTCCCGGCCTCTGGGAAAAACACCTCT-A-AGCGTCAATCAGCTCGGTTTCGCATATTA-TGATATCCCCCGTTGACCAATTGA--TAGTACCCGAGCTTACCGTCGG-ATTCTGGAGTCTT-ATGAGGTTACCGACGA-CGCAGTACCATAAGT-GCGCAATTTGACTGTTCCCGTCGAGTAACCA-AGCTTTGCTCA-CCGGGATGCGCGCCGATGTGACCAGGGGGCGCATGTTACATTGAC-A-GCTGGATCATGTTATGAC-GTGGGTC-ATGCTAAAAGCCTAAAGGACGGT-GCATTAGTAT-TACCGGGACCTCATATCAATGCGCTCGCTAGTTCCTCTTCTCTTGATAACGTATATGCGTCAGGCGCCCGTCCGCCTCCAATACGTG-ACAACGTC-AGTACTGAGCCTC--AA-ACATCGTCTTGTTCG-CC-TACAAAGGATCGGTAGAAAACTCAATATTCGGGTATAAGGTCGTAGGAAGTGTGTCGCCCAGGGCCG-CTAGA-AGCGCACACAAGCG-CTCCTGTCAAGGAGTTG-GTGAAAA-ATGAAC--GACT-ATTGCGTCAC--CTACCTCT-AAGTTTTT-GACAATTTCATGGACGAATTGA-AGCGTCCACAAGCATCTGCCGTAGATATGCGGTAGGTTTTTACATATG-TCACTGCAGAGTCACGGACA-CACATCGCTGTCAAAATGCTCGTACCTAGT-GT-TTGCGATCCCCC-GCGGCATTA-TCTTTTGAACCCTCGTCCCTGTGG-CTCTGATGATTGAG-GTCTGTA-TTCCCTCGTTGTGGGGGGATTGGACCTT-TGTATAGGTTCTTTAACCG-ATGGGGGGCCG--ATCGA-A-TA-TGCTCCTGTTTGCCCCGAACCTT-ACCTCGG-TCCAGACA-CTAAGAAAAACCCC-C-ACTGTAAGGTGCTGAGCCTTTGGATAGCC-CGCGAATGAT-CC-TAGTTGACAA-CTGAACGCGCTCGAACA-TGCCC-GCCCTCTGA--CTGCTGTCTG-GCACCTTTAGACACGCGTCGAC-CATATATT-AGCGCTGTCTGTGG-AGGT-TGTGTCTTGTTGCTCA-CT-CATTATCTGT-AACTGGCTCC-CTC-CCAT-TGGCGTCTTTACACCAACCGCTAGGTTACAGTGCA-TCTAGCGCCTATTATCAGGGCGT-TTGCAGCGGCGCGGTGGCTATGT-GTTAGACATATC-CTTACACTGTATGCTAG-AGCAAGCCAC-TCTGAATGGGTTGC-CGATGAATGA-TCTTGATC-GAGCTCGCA-AC---TACATGGAGTCCGAAGTGAACCTACGGATGATCGTATTCCAACACGAGGATC-TATACGTATAGG-A-GGCG-TAATCCACAATTTAGTAACTCTTGACGC---GGATGAAAAT-GTCGTTACACCTTCCAGAGGCTCGG-GTATATATATGACCT--TGTGATTGAGGACGATCTAGAATAA-CT-GT-G-CT-AAAGTACAGTAGTTTCTATGT-GGTAGGTGGAGAATACAGAGTAG-ATGATTC-GTGGGCCACA-C--T-ACTTTCAT-TAGAGCAGAGA-C-GTGAGTGAGTTTTACACTAGCCAGATGGACCG-GTGA-AGTCTAACAGCCACCGCTT-GTGAGGTCGTTTCCCAGTC-ACCCTACTACAGGCAAAAACTCAGTGT-CC-GTGA-GTGCGTTAGTGATATTCCCTAACGGTTAGGTAACT-CATGAATTCA-AT-TAAGCGTGTCC-CGGT-CACGCCCCCATGGGGGCCTTCTTGGGAGG--AGCATCTTAT--AT-GCTCACGTGGTT-GATAGG-A-T-AATACACTTTTAGTCAGTCCATCAATAAC-AAAGGAAC---CAGGTGGTCGCAGATA-TCCCGCTGATATAGCACTGTGTAAACTCAGGTGATA-CTAAGC--GCTCTAAT-ACG-CTTAATGGCAATGCCCAGTTC--ACGACTAGCTTATGAGGCCCAGCTATGGACTGCGGC-GGCATGTCGGC-GATGGTTGCCCTCGCCCTAAATTATGTACGA-T-ACCGCCT-CTTGTTCT-CCGCCCATAGGGT-C--AGCAGGCGATAGACTCCCAGAAATTTCCTCGTCGT-CCGAATAAGACTAACACGACTA-TT-CCTCTAC-GT-G-AA-CTTATCA-CAAATG-GCT-TACC-TAGGTGGTGGCAGATCACTTTCCGGTG-TATTACGAATTGACGCATACCGAC-A-CGC-GCTTGTTGGATAATCGACTCTAACCTCCTCTCTGGCACATGT-GCTGGATTACCTC-TATTTT-TCTCGCTTAG--GGAACG-T-CCTCTGTCGCGTGAG-GTACGTTTCACGGGAG-CGGCTTGTTCATGCCACGTCCATTATCGA-AGTG-C-GTAAGG-A-GAGCCCTA--GACTCTACACGGAAA-TC-AAC-GTAGAAGGCTC-A-CT"),
    ("detect-secrets:aws_secret:my_id", "my_id: AKIAIOSFODNN7EXAMPLE"),
    ("detect-secrets:aws_secret:example-id", "aws_secret_access_key: AKIAIOSFODNN7EXAMPLE"),
]
# fmt: on


def _ids(cases: list[tuple]) -> list[str]:
    return [c[0] for c in cases]


@pytest.mark.parametrize(("source", "text", "secret", "kind"), POSITIVES, ids=_ids(POSITIVES))
def test_published_and_own_positives_are_scrubbed(source: str, text: str, secret: str, kind: str):
    start = text.index(secret)
    findings = find_secrets(text)
    covering = [f for f in findings if f.start < start + len(secret) and start < f.end]
    assert covering and covering[0].kind == kind, findings
    scrubbed, counts = scrub_text(text)
    assert secret not in scrubbed and counts[kind] >= 1
    assert has_secret(text)


@pytest.mark.parametrize(("source", "text"), NEGATIVES, ids=_ids(NEGATIVES))
def test_published_and_own_negatives_are_left_alone(source: str, text: str):
    assert find_secrets(text) == []
    assert scrub_text(text) == (text, {}) and not has_secret(text)


@pytest.mark.parametrize(("source", "text"), DIVERGENCES, ids=_ids(DIVERGENCES))
def test_deliberate_divergences_are_scrubbed(source: str, text: str):
    assert has_secret(text) and scrub_text(text)[0] != text


ALL_TEXTS = [c[1] for c in POSITIVES + NEGATIVES + DIVERGENCES]


@pytest.mark.parametrize("text", ALL_TEXTS, ids=_ids(POSITIVES + NEGATIVES + DIVERGENCES))
def test_scrubbing_is_idempotent_and_findings_are_ordered(text: str):
    findings = find_secrets(text)
    assert all(a.end <= b.start for a, b in zip(findings, findings[1:], strict=False))
    once, counts = scrub_text(text)
    assert find_secrets(once) == [] and scrub_text(once) == (once, {})
    assert len(PLACEHOLDER_RE.findall(once)) == sum(counts.values()) >= len(findings)


def test_a_finding_hidden_behind_its_neighbour_is_scrubbed_too():
    # `+44` follows a digit, so it is no number until the first one becomes a placeholder.
    text = "(415) 555-0123+44 20 7946 0958"
    assert [f.kind for f in find_secrets(text)] == ["phone"]
    assert scrub_text(text) == ("<PHONE><PHONE>", {"phone": 2})


def test_author_field_is_personal_data_not_a_secret():
    # gitleaks generic.go fps: `author` holds no credential, but the address is an email.
    text = 'author = "james.fake@ymail.com",'
    assert [(f.kind, text[f.start : f.end]) for f in find_secrets(text)] == [
        ("email", "james.fake@ymail.com")
    ]


def test_url_password_keeps_user_and_host():
    text = "git clone https://dana:Xq9v2LmP@git.example.com/org/repo.git"
    assert scrub_text(text)[0] == (
        "git clone https://dana:<SECRET:url_password>@git.example.com/org/repo.git"
    )


def test_env_lines_keep_their_names():
    env = "export OPENAI_API_KEY=sk-proj-Xi8tdMjHV6pmbBbwilTeT3BlbkFJ3UDnpdEwNNm6wVBpYM0o\n"
    env += "DB_PASSWORD=Xq9v2LmP\nDEBUG=true\nREDIS_URL: redis://cache:6379\n"
    assert scrub_text(env)[0] == (
        "export OPENAI_API_KEY=<SECRET:openai_key>\nDB_PASSWORD=<SECRET:env_value>\n"
        "DEBUG=true\nREDIS_URL: redis://cache:6379\n"
    )


def test_truncated_private_key_is_scrubbed_to_the_end_of_its_base64():
    text = f"key:\n-----BEGIN PRIVATE KEY-----\n{RSA_BODY[:64]}\n{RSA_BODY[64:100]}\n\nDone."
    assert scrub_text(text)[0] == "key:\n<SECRET:private_key>\n\nDone."


def _claude_code_records() -> list[dict]:
    """An assistant tool call, its result and a user message, as Claude Code logs them."""
    curl = (
        "curl -s https://api.example.com/v1/items -H 'Authorization: Bearer "
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08' -H 'Accept: json'"
    )
    dotenv = (
        "ANTHROPIC_API_KEY=" + ANT + "\nAWS_ACCESS_KEY_ID=AKIALALEMEL33243OLIB\n"
        f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}\nGITHUB_TOKEN=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\n"
        "DATABASE_URL=postgres://app:Xq9v2LmP@localhost:5432/app\nPWD=/home/dev/app\n"
        "LOG_LEVEL=debug\n"
    )
    base = {"sessionId": "s-1", "cwd": "/home/dev/app", "version": "2.0.14", "isSidechain": False}
    return [
        {
            **base,
            "type": "user",
            "uuid": "u-1",
            "parentUuid": None,
            "message": {
                "role": "user",
                "content": "Why does the API call fail? Mail me at dana.berg@example.com.",
            },
        },
        {
            **base,
            "type": "assistant",
            "uuid": "a-1",
            "parentUuid": "u-1",
            "message": {
                "id": "msg_01",
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me reproduce the request and check the env."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "Bash",
                        "input": {"command": curl, "description": "Call the API"},
                    },
                ],
            },
        },
        {
            **base,
            "type": "user",
            "uuid": "u-2",
            "parentUuid": "a-1",
            "message": {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01",
                        "content": [{"type": "text", "text": "$ printenv\n" + dotenv}],
                        "is_error": False,
                    }
                ],
            },
        },
    ]


def test_scrub_value_cleans_text_tool_inputs_and_tool_results_alike():
    records = _claude_code_records()
    original = json.dumps(records)
    cleaned, counts = scrub_value(records)
    assert json.dumps(records) == original  # the input is not modified
    for leaked in (
        "dana.berg@example.com",
        "9f86d081884c7d659a2feaa0c55ad015",
        ANT[14:40],
        "AKIALALEMEL33243OLIB",
        AWS_SECRET,
        "wWPw5k4aXcaT4fNP0UcnZwJUVFk6LO0pINUx",
        "Xq9v2LmP",
    ):
        assert leaked not in json.dumps(cleaned)
    assert counts == {
        "email": 1,
        "bearer_token": 1,
        "anthropic_key": 1,
        "aws_access_key_id": 1,
        "aws_secret_access_key": 1,
        "github_token": 1,
        "url_password": 1,
    }
    # Structure, keys and non-secret content survive.
    assert [r["uuid"] for r in cleaned] == ["u-1", "a-1", "u-2"]
    tool_use = cleaned[1]["message"]["content"][1]
    assert tool_use["input"]["command"].startswith("curl -s https://api.example.com/v1/items")
    assert "Bearer <SECRET:bearer_token>' -H 'Accept: json'" in tool_use["input"]["command"]
    result = cleaned[2]["message"]["content"][0]["content"][0]["text"]
    assert "PWD=/home/dev/app\nLOG_LEVEL=debug\n" in result
    assert "postgres://app:<SECRET:url_password>@localhost:5432/app" in result
    assert cleaned[0]["message"]["content"].endswith("Mail me at <EMAIL>.")


def test_scrub_value_keeps_keys_and_non_strings():
    value = {"password": ("Xq9v2LmP", 3, None), "items": [{"email": "a.b@example.com"}], "n": 1.5}
    cleaned, counts = scrub_value(value)
    assert cleaned == {"password": ("Xq9v2LmP", 3, None), "items": [{"email": "<EMAIL>"}], "n": 1.5}
    assert counts == {"email": 1} and isinstance(cleaned["password"], tuple)


def test_cli_output_plain_and_json_never_show_secrets():
    text = "DB_PASSWORD=Xq9v2LmP\ncall +1 415 555 0142\n"
    assert scrub_cli_output(text, as_json=False) == (
        "DB_PASSWORD=<SECRET:env_value>\ncall <PHONE>\n"
    )
    out = scrub_cli_output(text, as_json=True)
    assert "Xq9v2LmP" not in out and "415" not in out
    doc = json.loads(out)
    assert doc["counts"] == {"env_value": 1, "phone": 1}
    assert [(f["kind"], text[f["start"] : f["end"]]) for f in doc["findings"]] == [
        ("env_value", "Xq9v2LmP"),
        ("phone", "+1 415 555 0142"),
    ]


def test_placeholder_regex_and_pii_kinds():
    assert (
        PLACEHOLDER_RE.fullmatch("<SECRET:aws_access_key_id>") and {"email", "phone"} == PII_KINDS
    )
    assert [m.group() for m in PLACEHOLDER_RE.finditer("a <EMAIL> b <PHONE> <SECRET:jwt>")] == [
        "<EMAIL>",
        "<PHONE>",
        "<SECRET:jwt>",
    ]


def test_non_ascii_text_keeps_offsets():
    text = "İstanbul ofisi: token=Xq9v2LmP9 ve e-posta ayşe@example.com"  # str.lower() lengthens İ
    found = {text[f.start : f.end]: f.kind for f in find_secrets(text)}
    assert found == {"Xq9v2LmP9": "env_value", "ayşe@example.com": "email"}
