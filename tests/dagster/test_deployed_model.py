"""deployed_model with the real ServingResource: the champion, by version, behind the endpoint.

The asset names a registry version only; the serving process it starts resolves and verifies
the file and accepts the swap because the resource sends the user's serving token.
"""

from __future__ import annotations

import dagster as dg
import pytest

from assets.release import deployed_model
from pipeline.registry import Registry
from pipeline.serve import free_port, server_status, stop_server
from resources import ArtifactStoreResource
from resources.serving import ServingResource

pytestmark = pytest.mark.slow

SHIP = "model-Q4_K_M.gguf"


def test_deployed_model_serves_the_champion_and_refuses_a_damaged_one(tmp_path, tiny_q4):
    artifacts = ArtifactStoreResource(root=str(tmp_path / "artifacts"))
    registry = Registry(tmp_path / "artifacts" / "registry")
    common = {"base_model": "tiny", "data_version": "d1", "code_version": "c1"}
    for _ in range(2):
        registry.set_champion(registry.register({SHIP: tiny_q4}, gates={"g": True}, **common))
    serving = ServingResource(port=free_port(), threads=1)
    resources = {"artifacts": artifacts, "serving": serving}
    endpoint = serving.config().endpoint
    try:
        registry.rollback("v1")
        first = dg.materialize([deployed_model], resources=resources)
        assert first.success
        [event] = first.get_asset_materialization_events()
        metadata = event.materialization.metadata
        assert metadata["version"].value == "v1"
        assert metadata["model"].value == str((registry.version_dir("v1") / SHIP).resolve())
        status = server_status(endpoint)
        assert status["current"]["version"] == "v1"
        assert status["registry"] == str(registry.root.resolve())

        # The champion's file is damaged after it was promoted: refused, v1 keeps serving.
        registry.set_champion("v2")
        path = registry.version_dir("v2") / SHIP
        damaged = path.with_name(".damaged")
        damaged.write_bytes(b"GGUF" + bytes(path.stat().st_size - 4))
        damaged.replace(path)
        second = dg.materialize([deployed_model], resources=resources, raise_on_error=False)
        assert not second.success
        failure = second.get_step_failure_events()[0].event_specific_data.error.to_string()
        assert f"v2/{SHIP}" in failure and "v1 still serves" in failure
        assert server_status(endpoint)["current"]["version"] == "v1"
    finally:
        stop_server(endpoint)
