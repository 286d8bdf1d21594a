"""Hand-written credential cases of issue 12 and the benign session text generator, for
scripts/gen_secret_fixtures.py. Every key here is made up (random characters in the provider's
format); none was ever issued.
"""

# ruff: noqa: E501

from __future__ import annotations

import base64
import json
import random
import uuid

# (name, text, secret that must not survive scrubbing)
ISSUE_CASES = [
    (
        "slack-bot",
        "use xoxb-2837461920-4839201938475-aB3dE5fG7hJ9kL1mN3pQ5rSt for the bot",
        "xoxb-2837461920-4839201938475-aB3dE5fG7hJ9kL1mN3pQ5rSt",
    ),
    (
        "slack-webhook",
        "curl -X POST https://hooks.slack.com/services/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 -d '{}'",
        "q8Wz3xY7vK2pL9mN4rT6sU1a",
    ),
    (
        "discord-webhook",
        "posting to https://discord.com/api/webhooks/1182736450987654321/Xk9_pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM2nO4pQ6rS8tU0vW2xY4zA6bC8dE0fG2hI",
        "Xk9_pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM2nO4pQ6rS8tU0vW2xY4zA6bC8dE0fG2hI",
    ),
    (
        "teams-webhook",
        "https://contoso.webhook.office.com/webhookb2/7a3c9e1f-2b4d-4f6a-8c0e-1a2b3c4d5e6f@9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a/IncomingWebhook/3fa85f6457174562b3fc2c963f66afa6/0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
        "3fa85f6457174562b3fc2c963f66afa6",
    ),
    (
        "stripe-live-prose",
        "the live key is sk_live_51Hx8q2LkT9vR3mN7pW1zY4cB6dF8gJ0 ok",
        "sk_live_51Hx8q2LkT9vR3mN7pW1zY4cB6dF8gJ0",
    ),
    (
        "stripe-restricted",
        "rk_live_51Hx8q2LkT9vR3mN7pW1zY4cB6dF8gJ0aaa",
        "rk_live_51Hx8q2LkT9vR3mN7pW1zY4cB6dF8gJ0aaa",
    ),
    (
        "stripe-regular",
        "key sk_live_1111111111111111111111111111",
        "sk_live_1111111111111111111111111111",
    ),
    (
        "google-aiza",
        "Try the Maps key AIzaSyD4f7Gh2Jk9Lm3Np6Qr8St1Uv5Wx0Yz2Ab in the browser",
        "AIzaSyD4f7Gh2Jk9Lm3Np6Qr8St1Uv5Wx0Yz2Ab",
    ),
    ("gitlab-pat", "my token glpat-Xy7kP2mQ9rT4vW8zA1bC is set", "glpat-Xy7kP2mQ9rT4vW8zA1bC"),
    (
        "npm",
        "//registry.npmjs.org/:_authToken=npm_Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5",
        "npm_Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5",
    ),
    (
        "npm-prose",
        "publish with npm_Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5 now",
        "npm_Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5",
    ),
    (
        "pypi",
        "password = pypi-AgEIcHlwaS5vcmcCJGE4ZjY3YmQ5LTc3MzUtNDk1MS1hODQ5LTQ2ZTk5ODg0ZTg1ZgACKlszLCI2NjQ1YjM3Yy0xODkyLTQ1NzYtYTAzNS04YjE5NjFjNGUxMDEiXQAABiD3bYx2kJq",
        "pypi-AgEIcHlwaS5vcmcCJGE4ZjY3YmQ5LTc3MzUtNDk1MS1hODQ5LTQ2ZTk5ODg0ZTg1ZgACKlszLCI2NjQ1YjM3Yy0xODkyLTQ1NzYtYTAzNS04YjE5NjFjNGUxMDEiXQAABiD3bYx2kJq",
    ),
    (
        "pgp",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\nlQOYBF0j7VQBCADGxk3z8Qm2Lw9vT4pN6rY1sU8cB3dF5gH7jK9lM2nP4qR6tV8x\nZa1Bc3De5Fg7Hi9Jk1Lm3No5Pq7Rs9Tu1Vw3Xy5Za7Bc9De1Fg3Hi5Jk7Lm9No1Pq\n=Ab1C\n-----END PGP PRIVATE KEY BLOCK-----",
        "lQOYBF0j7VQBCADGxk3z8Qm2Lw9vT4pN6rY1sU8cB3dF5gH7jK9lM2nP4qR6tV8x",
    ),
    (
        "pgp-truncated",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF0j7VQBCADGxk3z8Qm2Lw9vT4pN6rY1sU8cB3dF5gH7jK9lM2nP4qR6tV8x\n",
        "lQOYBF0j7VQBCADGxk3z8Qm2Lw9vT4pN6rY1sU8cB3dF5gH7jK9lM2nP4qR6tV8x",
    ),
    (
        "azure-sas",
        "https://acct.blob.core.windows.net/c/f.txt?sv=2022-11-02&ss=b&srt=o&sp=r&se=2026-01-01T00:00:00Z&st=2025-01-01T00:00:00Z&spr=https&sig=Xk9pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM%2BnO4pQ6rS8%3D",
        "Xk9pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM",
    ),
    (
        "azure-conn",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=Zk9pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM2nO4pQ6rS8tU0vW2xY4zA6bC8dE0fG2hI4jK6lM8nO0pQ2rS4tU6vW==;EndpointSuffix=core.windows.net",
        "Zk9pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM2nO4",
    ),
    (
        "azure-ad",
        'client_secret: "Abc8Q~xY7kP2mQ9rT4vW8zA1bC3dE5fG7hJ9kL1m"',
        "Abc8Q~xY7kP2mQ9rT4vW8zA1bC3dE5fG7hJ9kL1m",
    ),
    (
        "azure-ad-prose",
        "the secret is Abc8Q~xY7kP2mQ9rT4vW8zA1bC3dE5fG7hJ9kL1m.",
        "Abc8Q~xY7kP2mQ9rT4vW8zA1bC3dE5fG7hJ9kL1m",
    ),
    (
        "sendgrid",
        "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",
        "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",
    ),
    (
        "twilio",
        "twilio key SK2b4d6f8a0c2e4f6a8b0c2d4e6f8a0b2c4",
        "SK2b4d6f8a0c2e4f6a8b0c2d4e6f8a0b2c4",
    ),
    (
        "telegram",
        "bot token 6123456789:AAH3kP9mQ2rT7vW4yZ8aB1cD5eF0gH6jK2l",
        "AAH3kP9mQ2rT7vW4yZ8aB1cD5eF0gH6jK2l",
    ),
    (
        "telegram-url",
        "https://api.telegram.org/bot6123456789:AAH3kP9mQ2rT7vW4yZ8aB1cD5eF0gH6jK2l/sendMessage",
        "AAH3kP9mQ2rT7vW4yZ8aB1cD5eF0gH6jK2l",
    ),
    (
        "digitalocean",
        "doctl auth init -t dop_v1_3f8a9b2c7d1e6f304a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f",
        "dop_v1_3f8a9b2c7d1e6f304a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f",
    ),
    (
        "shopify",
        "X-Shopify-Access-Token: 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",
        "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",
    ),
    (
        "dockerhub",
        "docker login -u dana -p dckr_pat_Xk9pQ2rT7vW3yZ8aB4cD6eF1gH5",
        "dckr_pat_Xk9pQ2rT7vW3yZ8aB4cD6eF1gH5",
    ),
    (
        "vault",
        "export VAULT_TOKEN=hvs.CAESIJk9pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM2nO4pQ6rS8tUGh4KHGh2cy5YazlwUTJyVDd2VzN5WjhhQjRjRDZl",
        "hvs.CAESIJk9pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM2nO4pQ6rS8tU",
    ),
    ("vault-prose", "login with hvs.Xk9pQ2rT7vW3yZ8aB4cD6eF1 then", "hvs.Xk9pQ2rT7vW3yZ8aB4cD6eF1"),
    (
        "bedrock",
        "AWS_BEARER_TOKEN_BEDROCK=ABSKQmVkcm9ja0FQSUtleS1hYmNkLWF0LTEyMzQ1Njc4OTAxMjpYazlwUTJyVDd2VzN5WjhhQjRjRDZlRjFnSDVqSzBsTTJuTzRwUTZyUzh0VTB2VzJ4WTR6QTZiQzhkRTBmRzJoSTRqSzZsTThuTzBwUTJyUzR0VTZ2Vw==",
        "ABSKQmVkcm9ja0FQSUtleS1hYmNkLWF0LTEyMzQ1Njc4OTAxMjpY",
    ),
    (
        "aws-configure",
        "aws configure set aws_secret_access_key Kx9pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM2nO4pQ6r",
        "Kx9pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM2nO4pQ6r",
    ),
    ("mysql-p", "mysql -u root -pS3cretPa55 -h db.internal app", "S3cretPa55"),
    ("mysql-password", "mysql --password=S3cretPa55 -u root", "S3cretPa55"),
    ("sshpass", "sshpass -p 'Hunter2Hunter2' ssh dana@10.0.0.5", "Hunter2Hunter2"),
    ("curl-u", "curl -u admin:Tr0ub4dor3 https://api.example.com/v1/items", "Tr0ub4dor3"),
    ("pgpassword", "PGPASSWORD=Tr0ub4dor3 psql -h db -U app", "Tr0ub4dor3"),
    ("docker-login", "docker login -u dana -p Tr0ub4dor3x registry.example.com", "Tr0ub4dor3x"),
    (
        "wget",
        "wget --user=dana --password=Tr0ub4dor3 https://files.example.com/a.tgz",
        "Tr0ub4dor3",
    ),
    ("token-flag", "./deploy --token Tr0ub4dor3zz --env prod", "Tr0ub4dor3zz"),
    ("url-userpass", "git clone https://dana:Tr0ub4dor3@github.com/org/repo", "Tr0ub4dor3"),
    (
        "base64-key",
        "echo c2tfbGl2ZV81MUh4OHEyTGtUOXZSM21ON3BXMXpZNGNCNmRGOGdKMA== | base64 -d",
        "c2tfbGl2ZV81MUh4OHEyTGtUOXZSM21ON3BXMXpZNGNCNmRGOGdKMA==",
    ),
    (
        "json-escaped-key",
        '{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\\nXk9pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM2nO4pQ6rS8tU0vW2xY4z\\n-----END PRIVATE KEY-----\\n"}',
        "Xk9pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM2nO4pQ6rS8tU0vW2xY4z",
    ),
    (
        "json-escaped-twice",
        '"{\\"private_key\\": \\"-----BEGIN PRIVATE KEY-----\\\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\\\\nXk9pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM2nO4pQ6rS8tU0vW2xY4z\\\\n-----END PRIVATE KEY-----\\\\n\\"}"',
        "Xk9pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM2nO4pQ6rS8tU0vW2xY4z",
    ),
    (
        "stripe-restricted-json",
        '{"stripe": {"key": "rk_live_51Nq2Xk9pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM"}}',
        "rk_live_51Nq2Xk9pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM",
    ),
    (
        "stripe-cli",
        "stripe listen --api-key sk_live_51Nq2Xk9pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM",
        "sk_live_51Nq2Xk9pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM",
    ),
    (
        "gitlab-pat-url",
        "git remote add origin https://oauth2:glpat-Xy7kP2mQ9rT4vW8zA1bC@gitlab.com/org/repo.git",
        "glpat-Xy7kP2mQ9rT4vW8zA1bC",
    ),
    (
        "npmrc",
        "echo '//registry.npmjs.org/:_authToken=npm_Zx8cV6bN4mL2kJ0hG8fD6sA4qW2eR0tY8uI6' > ~/.npmrc",
        "npm_Zx8cV6bN4mL2kJ0hG8fD6sA4qW2eR0tY8uI6",
    ),
    ("mysql-quoted", "mysqldump -uroot -p'Wq8#zR4!tY' shop > shop.sql", "Wq8#zR4!tY"),
    ("mysql-long-space", "mysql --user=app --password 'Wq8zR4tY99' shop", "Wq8zR4tY99"),
    ("psql-uri", "psql postgresql://app:Wq8zR4tY99@db.internal:5432/shop", "Wq8zR4tY99"),
    ("redis-cli", "redis-cli -h cache.internal --pass Wq8zR4tY99 ping", "Wq8zR4tY99"),
    (
        "curl-user-long",
        "curl --user admin:Wq8zR4tY99 https://jenkins.internal/api/json",
        "Wq8zR4tY99",
    ),
    (
        "gh-token-flag",
        "terraform apply -var github_token=ghp_Xk9pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM2nO4",
        "ghp_Xk9pQ2rT7vW3yZ8aB4cD6eF1gH5jK0lM2nO4",
    ),
    (
        "api-key-flag",
        "openai api chat.completions.create --api-key Zk9pQ2rT7vW3yZ8aB4cD6eF1 -m gpt-4o",
        "Zk9pQ2rT7vW3yZ8aB4cD6eF1",
    ),
    (
        "k8s-basic-auth-b64",
        "kubectl create secret generic db --from-literal=password=Wq8zR4tY99Lm",
        "Wq8zR4tY99Lm",
    ),
    (
        "base64-basic-header",
        "Authorization: Basic YWRtaW46c2tfbGl2ZV81MUh4OHEyTGtUOXZSM21ON3BXMXpZNGNCNmRGOGdKMA==",
        "YWRtaW46c2tfbGl2ZV81MUh4OHEyTGtUOXZSM21ON3BXMXpZNGNCNmRGOGdKMA==",
    ),
    (
        "base64-env",
        "data:\n  STRIPE_KEY: c2tfbGl2ZV81MUh4OHEyTGtUOXZSM21ON3BXMXpZNGNCNmRGOGdKMA==",
        "c2tfbGl2ZV81MUh4OHEyTGtUOXZSM21ON3BXMXpZNGNCNmRGOGdKMA==",
    ),
    (
        "sendgrid-env",
        "SENDGRID_API_KEY=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",
        "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",
    ),
    (
        "twilio-auth",
        "client = Client('AC3f8a9b2c7d1e6f304a5b6c7d8e9f0a1b', 'b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2')",
        "b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2",
    ),
    (
        "shopify-prose",
        "The custom app token 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 still works.",
        "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",
    ),
]


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choices("0123456789abcdef", k=n))


def _b64(rng: random.Random, n: int) -> str:
    return base64.b64encode(rng.randbytes(n)).decode()


_WORDS = ["session", "model", "adapter", "upload", "billing", "search", "export", "render", "parser", "config", "cache", "worker", "queue", "index", "report"]  # fmt: skip
_NAMES = ["api_key", "token", "password", "secret", "auth_token", "access_key", "client_secret"]


def _code(rng: random.Random) -> str:
    w, n = rng.choice(_WORDS), rng.choice(_NAMES)
    return rng.choice(
        [
            f'    {n} = os.environ["{n.upper()}"]',
            f"def load_{w}({n}: str | None = None, max_tokens: int = {rng.randint(1, 9999)}) -> dict:",
            f'    headers = {{"Authorization": f"Bearer {{{n}}}", "Content-Type": "application/json"}}',
            f"const {w}Client = new Client({{ {n}: process.env.{n.upper()}, timeout: {rng.randint(1, 90)}_000 }});",
            f'    if not {n}:\n        raise ValueError("{n} is required; set {n.upper()} in .env")',
            f"func (s *{w.capitalize()}Store) Get(ctx context.Context, id string) (*{w.capitalize()}, error) {{",
            f"    self.{n} = {n}",
            f'    {w}_key = f"{w}:{{user_id}}:{{page}}"',
            f"    resp = client.messages.create(model=model, max_tokens={rng.randint(64, 8192)}, messages=msgs)",
            f'        "{n}": "${{{n.upper()}}}",',
            f"    password_hash = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds={rng.randint(10, 14)}))",
            f"    token_ids = tokenizer.encode(text, add_special_tokens=False)[:{rng.randint(128, 4096)}]",
            f"export {n.upper()}=$(vault kv get -field={n} secret/{w})",
            f"{n.upper()}=",
            f"    # TODO: rotate the {w} {n} before the release",
        ]
    )


def _ids(rng: random.Random) -> str:
    sha = _hex(rng, 40)
    return rng.choice(
        [
            f"commit {sha}\nAuthor: Dana Berg <dana@users.noreply.github.com>",
            f"{sha[:7]} Fix {rng.choice(_WORDS)} retry on timeout",
            f"request_id={uuid.UUID(int=rng.getrandbits(128))} status=200",
            f'{{"uuid": "{uuid.UUID(int=rng.getrandbits(128))}", "parentUuid": "{uuid.UUID(int=rng.getrandbits(128))}", "type": "assistant"}}',
            f"docker pull python@sha256:{_hex(rng, 64)}",
            f"    --hash=sha256:{_hex(rng, 64)} \\",
            f'object {_hex(rng, 32)} etag "{_hex(rng, 32)}"',
            f"trace {_hex(rng, 16)}-{_hex(rng, 16)} span {_hex(rng, 16)}",
        ]
    )


def _lockfile(rng: random.Random) -> str:
    pkg = rng.choice(["react", "lodash", "esbuild", "typescript", "zod", "vite", "undici"])
    v = f"{rng.randint(0, 19)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
    return rng.choice(
        [
            f'      "integrity": "sha512-{_b64(rng, 64)}",',
            f'  resolved "https://registry.yarnpkg.com/{pkg}/-/{pkg}-{v}.tgz#{_hex(rng, 40)}"\n  integrity sha512-{_b64(rng, 64)}',
            f'"node_modules/{pkg}": {{"version": "{v}", "resolved": "https://registry.npmjs.org/{pkg}/-/{pkg}-{v}.tgz", "integrity": "sha1-{_b64(rng, 20)}"}}',
            f"{pkg}@{v}:\n  resolution: {{integrity: sha512-{_b64(rng, 64)}}}",
            f"{pkg}=={v} \\\n    --hash=sha256:{_hex(rng, 64)}",
        ]
    )


def _image(rng: random.Random) -> str:
    png = b"\x89PNG\r\n\x1a\n" + rng.randbytes(rng.randint(60, 600))
    data = base64.b64encode(png).decode()
    return rng.choice(
        [
            f'<img src="data:image/png;base64,{data}" alt="chart">',
            f'{{"type": "image", "source": {{"type": "base64", "media_type": "image/png", "data": "{data}"}}}}',
            f"background: url(data:image/png;base64,{data});",
        ]
    )


def _certificate(rng: random.Random) -> str:
    body = _b64(rng, rng.randint(300, 900))
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    label = rng.choice(["CERTIFICATE", "PUBLIC KEY", "CERTIFICATE REQUEST"])
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----"


def _path_url(rng: random.Random) -> str:
    w = rng.choice(_WORDS)
    return rng.choice(
        [
            f"/home/dev/projects/{w}/src/{w}_{rng.choice(_WORDS)}.py:{rng.randint(1, 900)}:{rng.randint(1, 80)}: E501 line too long",
            f"https://github.com/acme/{w}/blob/main/src/{w}/tokenizer.py#L{rng.randint(1, 500)}",
            f"https://api.example.com/v1/{w}?page={rng.randint(1, 50)}&per_page=100&sort=created_at",
            f"postgres://localhost:5432/{w}",
            f"redis://cache.internal:6379/{rng.randint(0, 15)}",
            f"s3://acme-{w}-artifacts/runs/{_hex(rng, 12)}/model.safetensors",
            f"C:\\Users\\dana\\AppData\\Local\\{w}\\cache\\{_hex(rng, 8)}.bin",
            f"git@github.com:acme/{w}.git",
        ]
    )


def _log(rng: random.Random) -> str:
    w = rng.choice(_WORDS)
    ts = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"
    return rng.choice(
        [
            f"{ts} INFO  {w}.worker[{rng.randint(100, 65000)}]: GET /api/{w}/{rng.randint(1, 9999)} 200 {rng.randint(1, 900)}ms from 10.0.{rng.randint(0, 255)}.{rng.randint(0, 255)}",
            f"{ts} WARN  token bucket for {w} refilled: {rng.randint(1, 100)} tokens/s",
            f"{ts} ERROR auth: invalid credentials for user_id={rng.randint(1, 99999)} (password mismatch)",
            f"== {rng.randint(1, 400)} passed, {rng.randint(0, 3)} skipped in {rng.random() * 90:.2f}s ==",
            f"Epoch {rng.randint(1, 20)}/20 - loss: {rng.random():.4f} - val_loss: {rng.random():.4f} - lr: {rng.random() / 1000:.2e}",
            f"Downloading {w}-{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}-py3-none-any.whl ({rng.randint(10, 900)} kB)",
        ]
    )


def _prose(rng: random.Random) -> str:
    w, w2 = rng.choice(_WORDS), rng.choice(_WORDS)
    return rng.choice(
        [
            f"The {w} step failed because the {w2} cache was stale; rerunning with a fresh token fixed it.",
            f"Set the password policy in the admin panel, then check the API key rotation schedule for {w}.",
            f"I moved the secret handling into the {w} module so the {w2} code never sees raw credentials.",
            f"Use `gh auth login` instead of pasting a personal access token into the {w} config.",
            f"The access token expires after {rng.randint(5, 60)} minutes, so the {w} worker refreshes it.",
            f"Let me check the {w} tests first, then update the {w2} README with the new auth flow.",
        ]
    )


def _json(rng: random.Random) -> str:
    return json.dumps(
        {
            "type": "assistant",
            "message": {
                "usage": {
                    "input_tokens": rng.randint(1, 9000),
                    "cache_read_input_tokens": rng.randint(0, 90000),
                    "output_tokens": rng.randint(1, 4000),
                },
                "model": "claude-sonnet-4-5",
            },
            "cwd": f"/home/dev/projects/{rng.choice(_WORDS)}",
            "version": f"2.{rng.randint(0, 9)}.{rng.randint(0, 40)}",
        }
    )


_KINDS = {
    "code": _code,
    "ids": _ids,
    "lockfile": _lockfile,
    "base64_image": _image,
    "certificate": _certificate,
    "path_url": _path_url,
    "log": _log,
    "prose": _prose,
    "json": _json,
}


def benign_lines(n: int = 3000, seed: int = 12) -> list[tuple[str, str]]:
    """`n` lines of ordinary session text as (kind, text), the same for the same seed."""
    rng = random.Random(seed)
    kinds = sorted(_KINDS)
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        out.append((kind, _KINDS[kind](rng)))
    return out
