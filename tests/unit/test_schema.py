import pytest

from flbed import schema
from flbed.errors import InputError
from tests.conftest import REPO

GOOD = {
    "name": "demo",
    "federatedscope": {"config": {"data": {"type": "toy"}, "model": {"type": "lr"}}},
    "server": {"profile": "edge_server"},
    "clients": [{"profile": "smartphone_low", "count": 2}, {"profile": "raspberry_pi"}],
}


def problems_of(data, environ=None):
    with pytest.raises(InputError) as caught:
        schema.parse_testbed(data, environ=environ or {})
    return caught.value.problems


def with_(**changes):
    return {**GOOD, **changes}


def test_a_good_file_reads_into_numbers():
    testbed = schema.parse_testbed(GOOD, environ={})
    assert testbed.name == "demo"
    assert testbed.client_count == 3
    assert testbed.timeout_s == 1800
    low = testbed.profiles["smartphone_low"]
    assert (low.memory_bytes, low.cpus) == (1536 * 2**20, 0.5)
    assert low.link.up_rate_bps == 5_000_000 and low.link.down_rate_bps == 20_000_000
    assert (low.link.delay_ms, low.link.loss_pct) == (50.0, 1.0)


def test_every_problem_is_reported_with_its_field_path():
    found = problems_of(with_(name="Bad Name", extra=1, timeout="1s",
                              clients=[{"profile": "nope", "count": 0}]))
    assert any(p.startswith("name: 'Bad Name' is not allowed") for p in found)
    assert any(p.startswith("extra: unknown key; allowed here: name,") for p in found)
    assert any(p.startswith("timeout: '1s' is outside") for p in found)
    assert any(p.startswith("clients[0].count: 0 is not allowed") for p in found)
    assert any(p.startswith("clients[0].profile: unknown profile 'nope'; known: edge_server")
               for p in found)


@pytest.mark.parametrize("clients, fragment", [
    ([], "clients: [] is not allowed"),
    ("two", "clients: 'two' is not allowed"),
    ([{"profile": "iot_minimal", "count": 501}], "clients[0].count: 501"),
    ([{"profile": "iot_minimal", "count": True}], "clients[0].count: True"),
    ([{"profile": "iot_minimal", "colour": "red"}], "clients[0].colour: unknown key"),
    ([{"profile": "iot_minimal", "host": "bad host;rm"}], "clients[0].host: 'bad host;rm'"),
])
def test_bad_clients(clients, fragment):
    assert any(fragment in p for p in problems_of(with_(clients=clients)))


def test_user_profiles_extend_builtins_and_each_other():
    testbed = schema.parse_testbed(with_(
        profiles={
            "slow_pi": {"extends": "raspberry_pi", "cpus": 0.25, "link": {"up": "2mbit"}},
            "slower_pi": {"extends": "slow_pi", "memory": "1g"},
        },
        clients=[{"profile": "slower_pi"}]), environ={})
    slower = testbed.profiles["slower_pi"]
    assert slower.cpus == 0.25 and slower.memory_bytes == 2**30
    assert slower.link.up_rate_bps == 2_000_000
    assert slower.link.down_rate_bps == 50_000_000  # inherited from raspberry_pi


@pytest.mark.parametrize("profile, fragment", [
    ({"extends": "nothing"}, "profiles.p.extends: unknown profile 'nothing'"),
    ({"extends": "iot_minimal", "memory": "12x"}, "profiles.p.memory: '12x'"),
    ({"extends": "iot_minimal", "memory": "1m"}, "below Docker's smallest"),
    ({"extends": "iot_minimal", "cpus": 0}, "profiles.p.cpus: 0 is outside"),
    ({"extends": "iot_minimal", "cpus": "fast"}, "profiles.p.cpus: 'fast' is not a CPU"),
    ({"extends": "iot_minimal", "link": {"up": "5"}}, "profiles.p.link.up: '5' is not a rate"),
    ({"extends": "iot_minimal", "link": {"loss": "120%"}}, "profiles.p.link.loss: '120%'"),
    ({"extends": "iot_minimal", "link": {"speed": "1mbit"}}, "profiles.p.link.speed: unknown"),
    ({"extends": "p"}, "profiles.p.extends: 'p' makes a cycle"),
    ({"memory": "1g"}, "profiles.p.cpus: missing"),
])
def test_bad_profiles(profile, fragment):
    found = problems_of(with_(profiles={"p": profile}, clients=[{"profile": "iot_minimal"}]))
    assert any(fragment in p for p in found), found


def test_jitter_needs_delay():
    found = problems_of(with_(profiles={"p": {"memory": "1g", "cpus": 1,
                                              "link": {"jitter": "5ms"}}}))
    assert any("profiles.p.link.jitter" in p and "needs a delay" in p for p in found)


def test_fs_source_comes_from_environment_first(tmp_path):
    env = {schema.FS_SOURCE_ENV: str(tmp_path)}
    assert schema.parse_testbed(GOOD, environ=env).fs_source == str(tmp_path)
    assert schema.parse_testbed(GOOD, environ={}).fs_source == schema.DEFAULT_FS_SOURCE
    local = with_(federatedscope={"source": "./fs"})
    assert schema.parse_testbed(local, environ={}, base_dir="/labs").fs_source == "/labs/fs"
    pinned = with_(federatedscope={"source": "federatedscope==0.3.0"})
    assert schema.parse_testbed(pinned, environ={}).fs_source == "federatedscope==0.3.0"


def test_a_relative_fs_source_that_exists_is_a_local_directory(tmp_path, monkeypatch):
    (tmp_path / "checkouts" / "fs").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    env = {schema.FS_SOURCE_ENV: "checkouts/fs"}
    assert schema.parse_testbed(GOOD, environ=env).fs_source == str(tmp_path / "checkouts/fs")
    absent = {schema.FS_SOURCE_ENV: "checkouts/none"}  # not a directory: a pip requirement
    assert schema.parse_testbed(GOOD, environ=absent).fs_source == "checkouts/none"


def test_shaping_may_only_skip_known_settings():
    found = problems_of(with_(shaping={"allow_missing": ["rate"]}))
    assert any(p.startswith("shaping.allow_missing: ['rate'] is not allowed") for p in found)


@pytest.mark.parametrize("text, fragment", [
    ("- just\n- a list\n", "must be a mapping"),
    ("name: [unclosed\n", "not valid YAML at line"),
    ("", "must be a mapping"),
])
def test_files_that_are_not_mappings(tmp_path, text, fragment):
    path = tmp_path / "testbed.yml"
    path.write_text(text)
    with pytest.raises(InputError, match=fragment):
        schema.load_testbed(str(path))


def test_missing_file():
    with pytest.raises(InputError, match="cannot read the testbed file"):
        schema.load_testbed("/nonexistent/testbed.yml")


def test_the_default_testbed_is_valid():
    testbed = schema.load_testbed(str(REPO / "testbeds" / "default.yml"), environ={})
    assert testbed.name == "default" and testbed.client_count == 3
