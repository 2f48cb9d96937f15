"""Each direction draws its own random stream from the seed (randomness.stream_seed), through
the userspace backend as the router builds its engines."""

from __future__ import annotations

from netbed_core.directions import DIRECTIONS
from netbed_core.netem import parse
from netbed_router.engine import Engine, EngineConfig
from netbed_router.randomness import splitmix64, stream_seed


def losses(engine: Engine, n: int = 2000) -> list[int]:
    """The sequence numbers `engine` drops among n 100-byte packets."""
    return [i for i in range(n) if not engine.on_packet(i, b"", 100, 0)]


def config(text: str) -> EngineConfig:
    return EngineConfig.from_dict(parse(text).to_dict())


def test_same_seed_two_directions_lose_different_packets() -> None:
    cfg = config("loss 20% seed 42")
    to_server = losses(Engine(cfg, stream=DIRECTIONS.index("to-server")))
    to_client = losses(Engine(cfg, stream=DIRECTIONS.index("to-client")))
    assert to_server and to_client
    assert to_server != to_client
    # independent streams: the overlap is about 20% of each, not all of it
    assert len(set(to_server) & set(to_client)) < 0.5 * len(to_server)


def test_same_seed_same_direction_replays_exactly() -> None:
    for stream in (0, 1):
        assert losses(Engine(config("loss 20% seed 42"), stream=stream)) == losses(
            Engine(config("loss 20% seed 42"), stream=stream))


def test_the_reported_seed_is_the_users_seed_not_the_derived_one() -> None:
    eng = Engine(config("loss 20% seed 42"), stream=1)
    assert eng.seed == 42 and eng.stats.seed == 42


def test_stream_seed_is_the_documented_function() -> None:
    # SplitMix64 reference values (the first outputs of a SplitMix64 generator seeded with 0)
    assert splitmix64(0) == 0xE220A8397B1DCDAF
    assert splitmix64(0x9E3779B97F4A7C15) == 0x6E789E6AA1B965F4
    assert stream_seed(0, 0) == 0xE220A8397B1DCDAF
    assert stream_seed(0, 1) == 0x6E789E6AA1B965F4
    assert stream_seed(-1, 0) == stream_seed(2**64 - 1, 0)
