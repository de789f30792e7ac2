"""The venue simulator over real HTTP: Kraken Futures route, auth, data, faults, admin API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from etl_project.simulator import (
    DEFAULT_KRAKEN_API_KEY,
    DEFAULT_KRAKEN_API_SECRET,
    Request,
    Response,
    Simulator,
    SimulatorConfig,
    serve_forever,
)
from etl_project.simulator import server as server_module
from etl_project.simulator.data import Num, dumps, plain

SIGNED_PATH = "/api/v3/subaccounts"
SERVER_TIME = re.compile(rb'"serverTime": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"')
FLEX_SUMMARY = [
    "initialMargin",
    "initialMarginWithOrders",
    "maintenanceMargin",
    "balanceValue",
    "portfolioValue",
    "collateralValue",
    "pnl",
    "unrealizedFunding",
    "totalUnrealized",
    "totalUnrealizedAsMargin",
    "availableMargin",
    "marginEquity",
]


def sign(secret_b64: str, nonce: str, path: str = SIGNED_PATH, post_data: str = "") -> str:
    """Kraken's Authent, written out independently of both connector and simulator."""
    digest = hashlib.sha256((post_data + nonce + path).encode()).digest()
    mac = hmac.new(base64.b64decode(secret_b64), digest, hashlib.sha512).digest()
    return base64.b64encode(mac).decode()


def get_subaccounts(
    sim: Any,
    nonce: str = "1",
    *,
    key: str = DEFAULT_KRAKEN_API_KEY,
    secret: str = DEFAULT_KRAKEN_API_SECRET,
    authent: str | None = None,
) -> requests.Response:
    headers = {"APIKey": key, "Authent": authent or sign(secret, nonce)}
    if nonce:
        headers["Nonce"] = nonce
    return requests.get(f"{sim.kraken_base_url}/subaccounts", headers=headers, timeout=5)


def without_time(body: bytes) -> bytes:
    found = SERVER_TIME.findall(body)
    assert len(found) == 1, body[:200]
    return SERVER_TIME.sub(b'"serverTime": ""', body)


def fractional_digits(text: str) -> int:
    value = Decimal(text)
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


# --- data and shape ----------------------------------------------------------------------------


def test_same_seed_same_bytes_except_server_time() -> None:
    bodies = []
    for seed in (7, 7, 8):
        with Simulator(SimulatorConfig(seed=seed)) as sim:
            response = get_subaccounts(sim)
            assert response.status_code == 200
            bodies.append(without_time(response.content))
    assert bodies[0] == bodies[1]
    assert bodies[0] != bodies[2]


def test_body_is_shaped_like_the_seed_example(simulator: Any) -> None:
    response = get_subaccounts(simulator)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    doc = json.loads(response.content, parse_float=Decimal, parse_int=Decimal)
    assert list(doc) == ["result", "serverTime", "masterAccountUid", "subaccounts"]
    assert doc["result"] == "success"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        doc["masterAccountUid"])  # fmt: skip
    subs = doc["subaccounts"]
    assert len(subs) == 3
    assert len({s["accountUid"] for s in subs}) == 3
    for i, sub in enumerate(subs):
        keys = [k for k in sub if k != "name"]
        assert keys == [
            "holdingAccounts", "futuresAccounts", "flexAccount", "fullName", "email", "accountUid",
        ]  # fmt: skip
        assert ("name" in sub) == (i % 2 == 1)
        assert [h["currency"] for h in sub["holdingAccounts"]] == [
            "gbp", "bch", "xrp", "usd", "eth", "usdt", "ltc", "usdc", "xbt",
        ]  # fmt: skip
        assert [f["name"] for f in sub["futuresAccounts"]] == [
            "f-xrp:usd", "f-eth:usd", "f-xbt:usd", "f-ltc:usd", "f-xrp:xbt", "f-bch:usd",
        ]  # fmt: skip
        flex = sub["flexAccount"]
        assert list(flex) == ["currencies", *FLEX_SUMMARY]
        for c in flex["currencies"]:
            assert list(c) == ["currency", "quantity", "value", "collateral", "available"]
        margins = {f["name"]: f["availableMargin"] for f in sub["futuresAccounts"]}
        assert margins["f-xbt:usd"] < 0
        assert fractional_digits(str(margins["f-xbt:usd"])) == 19
        assert flex["marginEquity"] - flex["initialMargin"] == flex["availableMargin"]
    emails = [s["email"] for s in subs]
    assert emails[2] == "email redacted"
    assert all(re.fullmatch(r"[a-z]+\.[a-z]+\d@example\.com", e) for e in emails[:2])


def test_numbers_are_written_as_exact_text(simulator: Any) -> None:
    text = get_subaccounts(simulator).content.decode()
    numbers = re.findall(r'": (-?\d[\d.eE+-]*)', text)
    assert numbers, text[:200]
    # Exponent form the way the seed writes it (3.46e-9), dust in holding xbt and f-xrp:xbt.
    assert len(re.findall(r'"currency": "xbt", "amount": \d\.\d\de-\d[,}]', text)) == 3
    assert len(re.findall(r'"f-xrp:xbt", "availableMargin": \d\.\d\de-\d[,}]', text)) == 3
    assert max(fractional_digits(n) for n in numbers if "e" not in n) == 19
    assert all(fractional_digits(n) <= 19 for n in numbers if "e" not in n)
    assert '"amount": 0,' in text or '"amount": 0}' in text
    assert '"quantity": 0,' in text
    assert not re.search(r"\d\.\d*0[,}\]]", text), "padding zeros in a number"
    assert "E" not in "".join(numbers) and "e-0" not in text  # no float repr leaks


def test_subaccount_count_is_configurable() -> None:
    with Simulator(SimulatorConfig(seed=3, kraken_subaccounts=5)) as sim:
        doc = get_subaccounts(sim).json()
    assert len(doc["subaccounts"]) == 5
    with Simulator(SimulatorConfig(seed=3, kraken_subaccounts=0)) as sim:
        assert get_subaccounts(sim).json()["subaccounts"] == []


def test_exact_json_writer() -> None:
    assert dumps({"a": Decimal("3.46E-9"), "b": Num("3.46e-9"), "c": [Decimal("-0.50"), 0]}) == (
        '{"a": 0.00000000346, "b": 3.46e-9, "c": [-0.5, 0]}'
    )
    assert dumps({"t": True, "n": None, "s": 'q"é'}) == '{"t": true, "n": null, "s": "q\\"é"}'
    assert plain(Decimal("1E+2")) == "100"
    assert plain(Decimal("-0E-7")) == "0"
    with pytest.raises(TypeError):
        dumps({"x": 0.1})
    with pytest.raises(ValueError):
        dumps(Decimal("NaN"))
    with pytest.raises(ValueError):
        Num("1.")


# --- authentication -------------------------------------------------------------------------


def _error(response: requests.Response) -> tuple[int, str]:
    doc = response.json()
    assert doc["result"] == "error" and SERVER_TIME.search(response.content)
    return response.status_code, doc["error"]


def test_auth_failures_answer_like_kraken(simulator: Any) -> None:
    assert _error(get_subaccounts(simulator, key="other-key")) == (401, "authenticationError")
    wrong = base64.b64encode(b"0" * 64).decode()
    assert _error(get_subaccounts(simulator, "5", secret=wrong)) == (401, "authenticationError")
    signed_for_other_nonce = sign(DEFAULT_KRAKEN_API_SECRET, "6")
    response = get_subaccounts(simulator, "7", authent=signed_for_other_nonce)
    assert _error(response) == (401, "authenticationError")
    no_headers = requests.get(f"{simulator.kraken_base_url}/subaccounts", timeout=5)
    assert _error(no_headers) == (401, "authenticationError")
    assert DEFAULT_KRAKEN_API_SECRET.encode() not in no_headers.content


def test_nonces_must_increase(simulator: Any) -> None:
    assert get_subaccounts(simulator, "1000").status_code == 200
    assert _error(get_subaccounts(simulator, "1000")) == (400, "nonceDuplicate")
    assert _error(get_subaccounts(simulator, "999")) == (400, "nonceBelowThreshold")
    assert _error(get_subaccounts(simulator, "12a")) == (400, "invalidArgument")
    assert get_subaccounts(simulator, "1001").status_code == 200
    # The nonce is optional at Kraken: signed without one, it is accepted.
    assert get_subaccounts(simulator, "").status_code == 200
    assert simulator.request_count("kraken_futures") == 6


# --- faults, payloads, counting ------------------------------------------------------------


def test_fault_injection(simulator: Any) -> None:
    simulator.set_fault("kraken_futures", status=503, times=2, retry_after=4)
    for nonce in ("1", "2"):
        response = get_subaccounts(simulator, nonce)
        assert _error(response) == (503, "Unavailable")
        assert response.headers["Retry-After"] == "4"
    assert get_subaccounts(simulator, "3").status_code == 200
    simulator.set_fault("kraken_futures", status=429)
    response = get_subaccounts(simulator, "4")
    assert _error(response) == (429, "apiLimitExceeded")
    assert "Retry-After" not in response.headers
    simulator.set_fault("kraken_futures", status=500, times=5, body=b"<html>down</html>")
    assert get_subaccounts(simulator, "5").content == b"<html>down</html>"
    simulator.clear_faults()
    assert get_subaccounts(simulator, "6").status_code == 200
    assert simulator.request_count("kraken_futures") == 6
    with pytest.raises(ValueError, match="unknown venue 'bitstamp'"):
        simulator.set_fault("bitstamp", status=503)
    with pytest.raises(ValueError):
        simulator.set_fault("kraken_futures", status=99)
    with pytest.raises(ValueError):
        simulator.request_count("nope")


def test_hang_fault_accepts_and_does_not_answer(simulator: Any) -> None:
    simulator.set_fault("kraken_futures", status=502, times=2, hang_seconds=0.4)
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{simulator.kraken_base_url}/subaccounts", timeout=(2, 0.1))
    started = time.monotonic()
    response = get_subaccounts(simulator, "1")  # held for hang_seconds, then the fault
    assert time.monotonic() - started >= 0.35 and _error(response) == (502, "Unavailable")
    assert get_subaccounts(simulator, "2").status_code == 200  # `times` used up
    assert simulator.request_count("kraken_futures") == 3
    with pytest.raises(ValueError, match="hang_seconds must be positive"):
        simulator.set_fault("kraken_futures", hang_seconds=0)


def test_clearing_faults_releases_hung_requests(simulator: Any) -> None:
    simulator.set_hang("kraken_futures", hang_seconds=30)
    answers: list[int] = []
    caller = threading.Thread(target=lambda: answers.append(get_subaccounts(simulator).status_code))
    caller.start()
    _wait_for(lambda: simulator.request_count("kraken_futures") == 1)
    simulator.clear_faults()
    caller.join(5)
    assert answers == [503]
    assert get_subaccounts(simulator, "2").status_code == 200  # cleared: no more hangs


def test_stopping_drops_hung_requests_promptly() -> None:
    sim = Simulator(SimulatorConfig()).start()
    sim.set_hang("kraken_futures", hang_seconds=3600)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            requests.get(f"{sim.kraken_base_url}/subaccounts", timeout=30)
        except requests.RequestException as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    _wait_for(lambda: sim.request_count("kraken_futures") == 1)
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 2
    caller.join(5)
    assert not caller.is_alive() and len(errors) == 1  # dropped unanswered


def _wait_for(condition: Any, seconds: float = 5.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.01)


def test_serve_payload_verbatim_and_back(simulator: Any) -> None:
    payload = b'{"result":"success","serverTime":"x","masterAccountUid":"m","subaccounts":[]}'
    simulator.serve_payload("kraken_futures", payload)
    assert get_subaccounts(simulator, "1").content == payload
    assert get_subaccounts(simulator, "2", key="bad").status_code == 401  # still authenticated
    simulator.serve_payload("kraken_futures", None)
    assert len(get_subaccounts(simulator, "3").json()["subaccounts"]) == 3


def test_concurrent_requests_are_all_counted(simulator: Any) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        status = get_subaccounts(simulator, "").status_code  # no nonce: order does not matter
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 20
    assert simulator.request_count() == simulator.request_count("kraken_futures") == 20


def test_admin_endpoints(simulator: Any) -> None:
    base = simulator.url
    counts = requests.get(f"{base}/_sim/requests", timeout=5).json()
    assert counts["kraken_futures"] == 0 and set(counts.values()) == {0}
    get_subaccounts(simulator, "1")
    fault = {"venue": "kraken_futures", "status": 502, "times": 2, "retry_after": 3}
    answer = requests.post(f"{base}/_sim/faults", json=fault, timeout=5)
    assert (answer.status_code, answer.json()) == (200, {"ok": True})
    response = get_subaccounts(simulator, "2")
    assert _error(response) == (502, "Unavailable") and response.headers["Retry-After"] == "3"
    assert requests.delete(f"{base}/_sim/faults", timeout=5).status_code == 200
    assert get_subaccounts(simulator, "3").status_code == 200
    hang = {"venue": "kraken_futures", "status": 503, "hang_seconds": 0.3}
    assert requests.post(f"{base}/_sim/faults", json=hang, timeout=5).status_code == 200
    started = time.monotonic()
    assert _error(get_subaccounts(simulator, "4")) == (503, "Unavailable")
    assert time.monotonic() - started >= 0.25
    bad_hang = {"venue": "kraken_futures", "hang_seconds": "never"}
    assert requests.post(f"{base}/_sim/faults", json=bad_hang, timeout=5).status_code == 400
    bad = requests.post(f"{base}/_sim/faults", json={"venue": "nowhere"}, timeout=5)
    assert bad.status_code == 400 and "unknown venue" in bad.json()["error"]
    assert requests.post(f"{base}/_sim/faults", data=b"{", timeout=5).status_code == 400
    assert requests.get(f"{base}/_sim/unknown", timeout=5).status_code == 404
    # Admin calls are not venue requests.
    assert requests.get(f"{base}/_sim/requests", timeout=5).json()["kraken_futures"] == 4
    assert simulator.request_count() == 4


def test_unknown_paths_and_methods(simulator: Any) -> None:
    assert requests.get(f"{simulator.url}/nowhere", timeout=5).status_code == 404
    post = requests.post(f"{simulator.kraken_base_url}/subaccounts", timeout=5)
    assert post.status_code == 405
    assert simulator.request_count() == 0


def test_router_passes_path_parameters() -> None:
    sim = Simulator(SimulatorConfig())
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response(200, b"a,b\n", content_type="text/csv")

    sim.add_venue("files", lambda status: b"error")
    sim.add_route("GET", "/reports/{date}.csv", "files", handler)
    with sim:
        response = requests.get(f"{sim.url}/reports/2026-01-02.csv?x=1", timeout=5)
        assert (response.status_code, response.content) == (200, b"a,b\n")
        assert response.headers["Content-Type"] == "text/csv"
        assert requests.get(f"{sim.url}/reports/a/b.csv", timeout=5).status_code == 404
        sim.set_fault("files", status=503)
        assert requests.get(f"{sim.url}/reports/x.csv", timeout=5).content == b"error"
    assert [(r.params, r.query) for r in seen] == [({"date": "2026-01-02"}, "x=1")]
    assert sim.request_count("files") == 2 and sim.request_count("kraken_futures") == 0


# --- lifecycle -------------------------------------------------------------------------------


def test_start_stop_lifecycle() -> None:
    sim = Simulator(SimulatorConfig(seed=1))
    with pytest.raises(RuntimeError):
        _ = sim.url
    sim.start()
    url = sim.url
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    assert sim.kraken_base_url == f"{url}/derivatives/api/v3"
    with pytest.raises(RuntimeError):
        sim.start()
    assert get_subaccounts(sim).status_code == 200
    sim.stop()
    sim.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/_sim/requests", timeout=2)


def test_serve_forever_serves_until_interrupted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers: list[int] = []

    def fake_sleep(seconds: float) -> None:
        url = re.search(r"listening on (http://\S+)", capsys.readouterr().out)
        assert url is not None
        answers.append(requests.get(f"{url.group(1)}/_sim/requests", timeout=5).status_code)
        raise KeyboardInterrupt

    monkeypatch.setattr(server_module, "time", SimpleNamespace(sleep=fake_sleep))
    serve_forever(SimulatorConfig(seed=2))
    assert answers == [200]
