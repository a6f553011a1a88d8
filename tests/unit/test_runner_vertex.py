"""Vertex runner: the real ``aiplatform.PipelineJob`` over REST against a local Vertex AI Pipelines server."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fakes.vertex_pipelines_server import FakeVertexPipelinesServer

from components.core.errors import PipelineRunError, RemoteUnavailable, SpecError
from components.core.spec import PipelineSpec, load_spec, parse_spec
from pipelines.compiler import compile_to_text, compiled_parameters
from pipelines.runners import vertex
from pipelines.runners.vertex import VertexSettings, apply_settings, get_run, list_runs, load_settings, submit_vertex, wait_run
from pipelines.tasks import resources_for

UNTIL = "transform"
PROJECT, REGION = "acme-ml", "europe-west4"
ACCOUNT = "runner@acme-ml.iam.gserviceaccount.com"
REPO = Path(__file__).resolve().parents[2]
_buckets = itertools.count()


def _root() -> str:
    """A pipeline root in a bucket that does not exist yet.

    PipelineJob.submit creates a missing bucket (fast, through the local
    server); for an existing one it asks Cloud Resource Manager about its
    owner, which no local server can answer and which takes a minute offline.
    """
    return f"gs://acme-root-{next(_buckets)}/pipeline-root"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVertexPipelinesServer]:
    with FakeVertexPipelinesServer() as s:
        # PipelineJob.submit checks the pipeline root's bucket with the Cloud Storage client
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", s.endpoint)
        yield s


def _spec(tmp_path: Path, **runtime: object) -> PipelineSpec:
    data = {
        "name": "shapes-detector",
        "task": "detection",
        "data": {"source": "data/annotations.json"},
        "runtime": {"image": "europe-docker.pkg.dev/acme/cvpipe/cvpipe:0.1.0", **runtime},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_spec(path)


def _submit(server: FakeVertexPipelinesServer, spec: PipelineSpec, **kwargs: object) -> vertex.SubmittedRun:
    args: dict[str, object] = {
        "project": PROJECT,
        "region": REGION,
        "api_endpoint": server.endpoint,
        "credentials": server.credentials(),
        "until": UNTIL,
        "service_account": ACCOUNT,
    }
    if "pipeline_root" not in kwargs and "settings" not in kwargs and not (spec.runtime.pipeline_root or "").startswith("gs://"):
        args["pipeline_root"] = _root()
    args.update(kwargs)
    return submit_vertex(spec, **args)  # type: ignore[arg-type]


def test_submit_sends_the_compiled_pipeline_as_a_pipeline_job(server: FakeVertexPipelinesServer, tmp_path: Path) -> None:
    spec = _spec(tmp_path, pipeline_root="gs://acme-pipelines/root")
    run = _submit(server, spec, service_account="cvpipe@acme-ml.iam.gserviceaccount.com", job_id="shapes-1", labels={"team": "vision"})

    [create] = server.calls("POST", "/pipelineJobs")
    assert create.path == f"/v1/projects/{PROJECT}/locations/{REGION}/pipelineJobs"
    assert create.query["pipelineJobId"] == "shapes-1"
    body = create.body
    assert body["displayName"] == "shapes-detector"
    assert body["serviceAccount"] == "cvpipe@acme-ml.iam.gserviceaccount.com"
    assert body["runtimeConfig"] == {"gcsOutputDirectory": "gs://acme-pipelines/root"}
    assert body["labels"] == {"team": "vision", "cvpipe-pipeline": "shapes-detector", "cvpipe-task": "detection"}
    compiled = yaml.safe_load(compile_to_text(spec, until=UNTIL))
    assert body["pipelineSpec"]["deploymentSpec"] == compiled["deploymentSpec"]
    assert body["pipelineSpec"]["root"] == compiled["root"]
    parameters = body["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]
    assert {k: v["defaultValue"] for k, v in parameters.items()} == compiled_parameters(spec, until=UNTIL)  # the spec travels unchanged
    # the pipeline root's bucket was created in the project's region, with the job's account allowed to use it
    [bucket] = server.calls("POST", "/storage/v1/b")
    assert bucket.query["project"] == PROJECT and bucket.body["name"] == "acme-pipelines" and bucket.body["location"] == REGION
    bindings = {b["role"]: b["members"] for b in server.iam["acme-pipelines"]["bindings"]}
    member = "serviceAccount:cvpipe@acme-ml.iam.gserviceaccount.com"
    assert member in bindings["roles/storage.objectCreator"] and member in bindings["roles/storage.objectViewer"]

    assert run.target == "vertex" and run.run_id == "shapes-1" and run.state == "PENDING" and run.name == "shapes-detector"
    # the caller's credentials reached both services (pipelines and storage)
    assert {r.authorization for r in server.requests} == {f"Bearer {server.token}"}
    assert run.details["resource_name"] == f"projects/{PROJECT}/locations/{REGION}/pipelineJobs/shapes-1"
    assert run.url == f"https://console.cloud.google.com/vertex-ai/locations/{REGION}/pipelines/runs/shapes-1?project={PROJECT}"


def test_pipeline_root_precedence(server: FakeVertexPipelinesServer, tmp_path: Path) -> None:
    settings = VertexSettings(project=PROJECT, region=REGION, staging_bucket="gs://acme-staging", service_account=ACCOUNT)
    minio = _spec(tmp_path, pipeline_root="minio://mlpipeline/v2")
    gcs = _spec(tmp_path, pipeline_root="gs://from-spec/root")

    def root_of(run: vertex.SubmittedRun) -> str:
        return server.jobs[run.run_id].body["runtimeConfig"]["gcsOutputDirectory"]

    assert root_of(_submit(server, gcs, settings=settings, pipeline_root="gs://explicit/root")) == "gs://explicit/root"
    assert root_of(_submit(server, gcs, settings=settings)) == "gs://from-spec/root"
    assert root_of(_submit(server, minio, settings=settings)) == "gs://acme-staging/pipeline_root"  # a Kubeflow root is skipped
    with pytest.raises(PipelineRunError, match="needs a gs:// pipeline root"):
        _submit(server, minio, pipeline_root=None)
    assert len(server.calls("POST", "/pipelineJobs")) == 3


def test_settings_fill_project_region_account_and_machines(server: FakeVertexPipelinesServer, tmp_path: Path) -> None:
    settings = VertexSettings.model_validate(
        {
            "project": PROJECT,
            "region": REGION,
            "service_account": ACCOUNT,
            "pipeline_root": "gs://acme-settings/root",
            "labels": {"cost-center": "ml"},
            "machines": {"default": {"machine_type": "e2-standard-4"}, "train": {"machine_type": "g2-standard-8"}},
        }
    )
    spec = _spec(tmp_path, resources={"ingest": {"cpu": "2"}})
    run = submit_vertex(spec, settings=settings, api_endpoint=server.endpoint, until=UNTIL, credentials=server.credentials())
    body = server.jobs[run.run_id].body
    assert server.calls("POST", "/pipelineJobs")[0].path == f"/v1/projects/{PROJECT}/locations/{REGION}/pipelineJobs"
    assert body["serviceAccount"] == ACCOUNT
    assert body["runtimeConfig"]["gcsOutputDirectory"] == "gs://acme-settings/root"
    assert body["labels"]["cost-center"] == "ml"
    executors = body["pipelineSpec"]["deploymentSpec"]["executors"]
    ingest = executors["exec-ingest"]["container"]["resources"]
    assert ingest["cpuLimit"] == 2.0 and ingest["memoryLimit"] == 16.0  # the spec's CPU wins, the machine fills memory
    validate = executors["exec-validate"]["container"]["resources"]
    assert validate["cpuLimit"] == 4.0 and validate["memoryLimit"] == 16.0
    # the train step (compiled the same way) gets the g2 machine's shape and its L4
    effective = apply_settings(spec, settings)
    train = resources_for(effective, "train")
    assert (train.cpu, train.memory) == ("8", "32G")
    assert (effective.train.accelerator.type, effective.train.accelerator.kind, effective.train.accelerator.count) == (
        "gpu",
        "NVIDIA_L4",
        1,
    )


def test_apply_settings_never_overrides_the_spec(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "p",
            "task": "detection",
            "data": {"source": "gs://b/a.json"},
            "train": {"accelerator": {"type": "gpu", "kind": "NVIDIA_TESLA_T4", "count": 2}},
            "runtime": {"image": "registry.example.com/cvpipe:1", "resources": {"default": {"cpu": "3", "memory": "7G"}}},
        }
    )
    settings = VertexSettings.model_validate(
        {"image": "europe-docker.pkg.dev/acme/cvpipe/cvpipe:9", "machines": {"train": {"machine_type": "a2-highgpu-1g"}}}
    )
    out = apply_settings(spec, settings)
    assert out.runtime.image == "registry.example.com/cvpipe:1"
    assert out.train.accelerator.kind == "NVIDIA_TESLA_T4" and out.train.accelerator.count == 2
    assert out.runtime.resources["train"].cpu == "3" and out.runtime.resources["train"].memory == "7G"
    assert spec.runtime.resources.get("train") is None  # the given spec is not modified

    assert out.runtime.metadata.url == spec.runtime.metadata.url
    default_image = parse_spec({"name": "p", "task": "detection", "data": {"source": "gs://b/a.json"}})
    assert apply_settings(default_image, settings).runtime.image == "europe-docker.pkg.dev/acme/cvpipe/cvpipe:9"
    with_store = settings.model_copy(update={"metadata_url": "mysql://cvpipe@10.0.0.5:3306/mlmd"})
    assert apply_settings(default_image, with_store).runtime.metadata.url == "mysql://cvpipe@10.0.0.5:3306/mlmd"
    own_store = parse_spec({**default_image.model_dump(mode="json"), "runtime": {"metadata": {"url": "mysql://me@db:3306/x"}}})
    assert apply_settings(own_store, with_store).runtime.metadata.url == "mysql://me@db:3306/x"
    assert apply_settings(default_image, settings).train.accelerator.kind == "NVIDIA_TESLA_A100"
    assert apply_settings(default_image, None) is default_image


def test_wait_get_and_list(server: FakeVertexPipelinesServer, tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    run = _submit(server, spec, job_id="shapes-2")
    seen: list[str] = []
    done = wait_run(
        run.run_id,
        PROJECT,
        REGION,
        poll=0.0,
        api_endpoint=server.endpoint,
        credentials=server.credentials(),
        on_change=lambda r: seen.append(r.state),
        sleep=lambda s: None,
    )
    assert done.succeeded and seen == ["PENDING", "RUNNING", "SUCCEEDED"]
    again = get_run(
        f"projects/{PROJECT}/locations/{REGION}/pipelineJobs/shapes-2",
        PROJECT,
        REGION,
        api_endpoint=server.endpoint,
        credentials=server.credentials(),
    )
    assert again.run_id == "shapes-2" and again.state == "SUCCEEDED"
    other = parse_spec({"name": "other-pipeline", "task": "detection", "data": {"source": "gs://b/a.json"}})
    _submit(server, other, job_id="other-1")
    listed = list_runs(PROJECT, REGION, pipeline="shapes-detector", api_endpoint=server.endpoint, credentials=server.credentials())
    assert [r.run_id for r in listed] == ["shapes-2"]
    assert server.calls("GET", "/pipelineJobs")[-1].query["filter"] == 'pipeline_name="shapes-detector"'
    everything = list_runs(PROJECT, REGION, api_endpoint=server.endpoint, credentials=server.credentials())
    assert [r.run_id for r in everything] == ["other-1", "shapes-2"]  # newest first
    assert everything[1].pipeline == "shapes-detector" and everything[1].url.endswith("/runs/shapes-2?project=acme-ml")


def test_list_reads_only_the_pages_that_hold_the_newest_jobs(server: FakeVertexPipelinesServer, tmp_path: Path) -> None:
    """Vertex AI sorts and pages: ``list_runs(limit=n)`` asks for newest first and stops once it has ``n`` jobs."""
    spec = _spec(tmp_path)
    for i in range(7):
        _submit(server, spec, job_id=f"job-{i}")
    server.max_page_size = 2
    before = len(server.calls("GET", "/pipelineJobs"))
    got = list_runs(PROJECT, REGION, api_endpoint=server.endpoint, credentials=server.credentials(), limit=3)
    assert [r.run_id for r in got] == ["job-6", "job-5", "job-4"]
    asked = [c.query for c in server.calls("GET", "/pipelineJobs")[before:] if c.path.endswith("/pipelineJobs")]
    assert [q.get("pageToken") for q in asked] == [None, "2"]  # two pages of two, not all four
    assert all(q["orderBy"] == "create_time desc" and q["pageSize"] == "3" for q in asked)
    assert got[0].url == f"https://console.cloud.google.com/vertex-ai/locations/{REGION}/pipelines/runs/job-6?project={PROJECT}"
    everything = list_runs(PROJECT, REGION, api_endpoint=server.endpoint, credentials=server.credentials(), limit=50)
    assert [r.run_id for r in everything] == [f"job-{i}" for i in reversed(range(7))]
    assert list_runs(PROJECT, REGION, api_endpoint=server.endpoint, credentials=server.credentials(), limit=0) == []


def test_failed_job_carries_its_error(server: FakeVertexPipelinesServer, tmp_path: Path) -> None:
    run = _submit(server, _spec(tmp_path), job_id="shapes-3")
    server.script(run.run_id, ["RUNNING", "FAILED"], error="The replica workerpool0-0 exited with a non-zero status of 1.")
    done = wait_run(
        run.run_id, PROJECT, REGION, poll=0.0, api_endpoint=server.endpoint, credentials=server.credentials(), sleep=lambda s: None
    )
    assert done.state == "FAILED" and done.error == "The replica workerpool0-0 exited with a non-zero status of 1."
    server.script(run.run_id, ["RUNNING"])
    with pytest.raises(PipelineRunError, match="still RUNNING after 1s"):
        wait_run(
            run.run_id,
            PROJECT,
            REGION,
            timeout=1,
            poll=5,
            api_endpoint=server.endpoint,
            credentials=server.credentials(),
            sleep=lambda s: None,
        )


def test_get_reports_each_step_with_its_state_times_and_error(server: FakeVertexPipelinesServer, tmp_path: Path) -> None:
    """job_detail.task_details become the job's steps: the root task (the pipeline itself) is left out."""
    run = _submit(server, _spec(tmp_path), job_id="shapes-steps")
    runner = vertex.VertexRunner(PROJECT, REGION, api_endpoint=server.endpoint, credentials=server.credentials())
    assert runner.get(run.run_id).steps == []  # Vertex AI reports no task before the job starts

    server.script_tasks(run.run_id, [("ingest", "SUCCEEDED", None), ("validate", "RUNNING", None), ("transform", "PENDING", None)])
    running = runner.get(run.run_id)
    assert server.calls("GET", "/pipelineJobs/shapes-steps")[-1].authorization == f"Bearer {server.token}"
    tasks = {t["taskName"]: t for t in server.jobs[run.run_id].body["jobDetail"]["taskDetails"]}
    assert [(s.name, s.state) for s in running.steps] == [("ingest", "SUCCEEDED"), ("validate", "RUNNING"), ("transform", "PENDING")]
    ingest, validate, transform = running.steps
    assert ingest.started == tasks["ingest"]["startTime"].replace(".000000Z", "Z") and ingest.duration_s == 1.0
    assert validate.started and validate.ended == "" and validate.duration_s is None
    assert (transform.started, transform.ended, transform.duration_s) == ("", "", None)

    server.script_tasks(
        run.run_id,
        [
            ("ingest", "SUCCEEDED", None),
            ("validate", "FAILED", "The replica workerpool0-0 exited with status 1."),
            ("transform", "NOT_TRIGGERED", None),
        ],
    )
    server.script(run.run_id, ["FAILED"])
    failed = runner.get(run.run_id)
    assert [(s.name, s.state, s.raw_state, s.error) for s in failed.steps] == [
        ("ingest", "SUCCEEDED", "SUCCEEDED", None),
        ("validate", "FAILED", "FAILED", "The replica workerpool0-0 exited with status 1."),
        ("transform", "SKIPPED", "NOT_TRIGGERED", None),
    ]
    assert failed.steps[1].duration_s == 1.0


def test_errors_carry_the_services_message(server: FakeVertexPipelinesServer, tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    _submit(server, spec, job_id="dup")
    with pytest.raises(PipelineRunError, match=r"submitting the pipeline job failed: .*already exists"):
        _submit(server, spec, job_id="dup")
    with pytest.raises(PipelineRunError, match=r"getting pipeline job ghost failed: .*not found"):
        get_run("ghost", PROJECT, REGION, api_endpoint=server.endpoint, credentials=server.credentials())
    with pytest.raises(PipelineRunError, match="needs a project"):
        submit_vertex(spec, region=REGION, api_endpoint=server.endpoint, credentials=server.credentials())


def test_aiplatform_global_configuration_is_put_back(server: FakeVertexPipelinesServer, tmp_path: Path) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform
    from google.cloud.aiplatform import initializer

    aiplatform.init(project="someone-else", location="us-central1", credentials=AnonymousCredentials())
    before = dict(vars(initializer.global_config))
    _submit(server, _spec(tmp_path))
    assert vars(initializer.global_config) == before
    assert initializer.global_config.project == "someone-else" and initializer.global_config.location == "us-central1"


def test_settings_file_of_the_repository_loads() -> None:
    settings = load_settings(REPO / "infra" / "vertex" / "settings.yaml")
    assert settings.project and settings.region and (settings.default_pipeline_root() or "").startswith("gs://")
    assert "train" in settings.machines and settings.machines["train"].resolved()[2]


def test_bad_settings_are_reported_with_key_paths(tmp_path: Path) -> None:
    bad = tmp_path / "settings.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "project": "p",
                "pipeline_root": "/local",
                "metadata_url": "sqlite:///mlmd.sqlite",
                "machines": {"train": {"machine_type": "huge-1"}},
                "zone": "x",
            }
        )
    )
    with pytest.raises(SpecError) as err:
        load_settings(bad)
    keys = {k for k, _ in err.value.problems}
    assert keys == {"pipeline_root", "metadata_url", "machines.train.machine_type", "zone"}


def test_calls_without_the_callers_credentials_are_refused(server: FakeVertexPipelinesServer, tmp_path: Path) -> None:
    from google.oauth2.credentials import Credentials

    spec = _spec(tmp_path, pipeline_root=_root())
    with pytest.raises(PipelineRunError):
        _submit(server, spec, credentials=Credentials(token="someone-elses-token"))
    assert server.requests and server.requests[-1].authorization == "Bearer someone-elses-token"
    assert not server.jobs


def test_apply_settings_sends_several_workers_to_a_custom_job_on_the_training_machine() -> None:
    base = {"name": "p", "task": "detection", "data": {"source": "gs://b/a.json"}}
    settings = VertexSettings.model_validate(
        {
            "project": PROJECT,
            "region": REGION,
            "service_account": ACCOUNT,
            "staging_bucket": "gs://acme-staging",
            "image": "europe-docker.pkg.dev/acme/cvpipe/cvpipe:9",
            "machines": {"train": {"machine_type": "g2-standard-8"}},
        }
    )
    out = apply_settings(parse_spec({**base, "train": {"workers": 3}}), settings)
    job = out.train.vertex_job
    assert job is not None
    assert (job.project, job.region, job.staging_bucket, job.service_account) == (PROJECT, REGION, "gs://acme-staging", ACCOUNT)
    assert (job.machine_type, job.accelerator_type, job.accelerator_count) == ("g2-standard-8", "NVIDIA_L4", 1)
    assert job.image == "europe-docker.pkg.dev/acme/cvpipe/cvpipe:9"
    assert out.train.accelerator.type == "cpu"  # the task only launches the job: the replicas get the L4s

    assert apply_settings(parse_spec({**base, "train": {}}), settings).train.vertex_job is None  # one worker: as before
    own = {"project": "mine", "region": "us-central1", "staging_bucket": "gs://mine", "machine_type": "n1-standard-4"}
    kept = apply_settings(parse_spec({**base, "train": {"workers": 2, "vertex_job": own}}), settings).train.vertex_job
    assert kept is not None and (kept.project, kept.machine_type) == ("mine", "n1-standard-4")  # the spec wins
    no_project = settings.model_copy(update={"project": None})
    assert apply_settings(parse_spec({**base, "train": {"workers": 2}}), no_project).train.vertex_job is None


@pytest.mark.timeout(60)  # the library's own retries took about 105 s before failing
def test_an_unreachable_endpoint_is_reported_within_the_read_deadline() -> None:
    from fakes.http import refusing_url

    assert VertexSettings().read_timeout_s == vertex.DEFAULT_READ_TIMEOUT_S == 10.0
    with refusing_url() as url:
        with pytest.raises(RemoteUnavailable) as got:
            get_run("shapes-2", PROJECT, REGION, api_endpoint=url)  # the default deadline
        assert got.value.endpoint == url and got.value.target == "vertex"
        assert "connection refused" in got.value.reason and url in str(got.value) and "getting pipeline job shapes-2" in str(got.value)
        quick = VertexSettings(project=PROJECT, region=REGION, api_endpoint=url, read_timeout_s=1)
        with pytest.raises(RemoteUnavailable, match=r"listing pipeline jobs.*connection refused"):
            list_runs(settings=quick)
        with pytest.raises(RemoteUnavailable, match=r"getting pipeline job shapes-2.*connection refused"):
            vertex.VertexRunner(settings=quick).cancel("shapes-2")
        with pytest.raises(RemoteUnavailable, match="connection refused"):
            vertex.VertexRunner(settings=quick, sleep=lambda s: None).wait("shapes-2", poll=0.0)


@pytest.mark.timeout(60)
def test_a_server_error_is_retried_until_the_read_deadline_then_reported(server: FakeVertexPipelinesServer, tmp_path: Path) -> None:
    run = _submit(server, _spec(tmp_path), job_id="shapes-3")
    settings = VertexSettings(project=PROJECT, region=REGION, api_endpoint=server.endpoint, read_timeout_s=3)
    runner = vertex.VertexRunner(settings=settings, credentials=server.credentials())
    assert runner.get(run.run_id).state == "PENDING"  # answered: not unavailable
    server.fail(500, "backend error", path_contains="/pipelineJobs")
    for read, what in ((lambda: runner.get(run.run_id), "getting pipeline job shapes-3"), (runner.list, "listing pipeline jobs")):
        before = len(server.calls("GET", "/pipelineJobs"))
        with pytest.raises(RemoteUnavailable) as got:
            read()
        assert got.value.endpoint == server.endpoint and what in str(got.value)
        assert "backend error" in got.value.reason and "gave up after retrying" in got.value.reason, got.value.reason
        assert len(server.calls("GET", "/pipelineJobs")) - before > 1  # a 5xx is retried, within the deadline
    with pytest.raises(RemoteUnavailable, match="backend error"):
        runner.cancel(run.run_id)
    assert not server.calls("POST", ":cancel")  # the job was never read, so never cancelled
