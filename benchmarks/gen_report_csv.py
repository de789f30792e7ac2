"""Generate a settlement platform Client Balance Report CSV (seed 000's format) of any size.

Why: the end-to-end benchmark (`bench_e2e.py`) feeds the product and the two baseline scripts
the very file a `kind: settlement_report` source ingests, at 100k to 5M rows. The file has to
look like the platform's own export (tests/fixtures/settlement_report_seed000.csv) so that
every contestant does the real work: the 33 columns in contract order, canonical lower-case
UUIDs, `TRUE`/`FALSE`, exact decimals with up to 20 fractional digits (`5.77`, `5.00`,
`0.00000000346`, `-0.0009056832839642471`), a few `User` values that need CSV quoting
(`"Treasury Desk 12, Ops"`) with an empty `Email`, and ~4 % all-zero rows (which the report
drops). Every row passes the report contract, so a correct pipeline publishes exactly the
non-zero rows and nothing is quarantined.

- Deterministic: the same `--seed`, `--rows` and `--chunk-rows` give the same bytes.
- `(accountUUID, Ccy)` is unique by construction, not by luck: the last 48 bits of every
  accountUUID are the account's serial number (XOR a constant), and an account's currencies
  are distinct.
- Rows of an account are shuffled within their chunk, so the file is not in report order.
- Vectorised (numpy + Arrow compute, no per-row Python) and streamed: one chunk of
  `--chunk-rows` rows is built and appended at a time, so memory stays ~ one chunk.

Usage: `python benchmarks/gen_report_csv.py OUT.csv --rows 1000000 [--seed 0]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from report_format import AMOUNT_COLUMNS, COLUMNS, RETIRED

#: Probability that a live amount is 0: balances are mostly non-zero, the rest mostly zero.
ZERO_SHARE: dict[str, float] = {"Total": 0.1, "Total Prefunding": 0.1, "Available": 0.15}
DEFAULT_ZERO_SHARE = 0.85
#: Share of rows whose 22 amounts are all 0 (dropped by the report unless keep_zero_rows).
ALL_ZERO_SHARE = 0.04
#: Share of users that are desks: `User` needs quoting (a comma) and `Email` is empty.
DESK_SHARE = 0.03
SYSTEM_SHARE = 0.02

#: Canonical codes only (no XBT/XDG aliases, which the report would normalise).
# fmt: off
CCYS = np.array([
    "BTC", "ETH", "USDT", "USD", "EUR", "GBP", "XRP", "LTC", "SOL", "ADA", "DOGE", "DOT", "AVAX",
    "LINK", "MATIC", "TRX", "BCH", "XLM", "ATOM", "UNI", "ETC", "FIL", "APT", "ARB", "OP", "NEAR",
    "ALGO", "AAVE", "CHF", "JPY",
])
# fmt: on
MAX_CCYS_PER_ACCOUNT = 12
SUB_MAIN_TYPES = np.array(["Trading account", "Custody account", "Holding account"])
GROUPS = 40
#: Distinct non-zero amount texts drawn from (large enough that Parquet dictionaries overflow
#: and CSV parsing sees realistic variety; built once, vectorised).
POOL_SIZE = 1 << 20
DEFAULT_CHUNK_ROWS = 100_000

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
#: Positions of the 32 hex digits in the 36-character UUID text.
_HEX_AT = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])
_SERIAL_MASK = 0x9E3779B97F4A


def uuid_text(rng: np.random.Generator, n: int, serial: np.ndarray | None = None) -> pa.Array:
    """`n` canonical lower-case version-4 UUID strings; the last 48 bits are `serial` if given.

    Built as one (n, 36) byte matrix that becomes the data buffer of an Arrow string array.
    """
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    if serial is not None:
        # XOR with one fixed 48-bit mask: still a bijection (unique), no longer looks serial.
        serial = np.asarray(serial, dtype=np.uint64) ^ np.uint64(_SERIAL_MASK)
        big_endian = serial.astype(">u8").view(np.uint8).reshape(n, 8)
        raw[:, 10:16] = big_endian[:, 2:8]
    nibbles = np.empty((n, 32), dtype=np.uint8)
    nibbles[:, 0::2] = raw >> 4
    nibbles[:, 1::2] = raw & 0x0F
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, _HEX_AT] = _HEX[nibbles]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))


def amount_pool(rng: np.random.Generator, size: int = POOL_SIZE) -> pa.Array:
    """`size` decimal texts; entry 0 is `0`, the others non-zero.

    1-16 significant digits, 0-20 fractional digits (trailing zeros kept, as the platform
    sends `5.00`), at most 12 integer digits, 15 % negative. Formatted with Arrow compute, one
    pass per scale, never through a float.
    """
    digits = rng.integers(1, 17, size)
    units = rng.integers(10 ** (digits - 1), 10**digits)
    scales = rng.integers(np.maximum(0, digits - 12), 21)
    negative = rng.random(size) < 0.15
    plain = pc.cast(pa.array(units), pa.string())
    parts: list[pa.Array] = []
    order: list[np.ndarray] = []
    for scale in range(21):
        where = np.flatnonzero(scales == scale)
        text = plain.take(pa.array(where))
        if scale:
            padded = pc.utf8_lpad(text, scale + 1, "0")
            text = pc.binary_join_element_wise(
                pc.utf8_slice_codeunits(padded, 0, -scale),
                pc.utf8_slice_codeunits(padded, -scale, 64),
                ".",
            )
        sign = pc.if_else(pa.array(negative[where]), "-", "")
        parts.append(pc.binary_join_element_wise(sign, text, ""))
        order.append(where)
    by_scale = pa.concat_arrays(parts)
    pool = by_scale.take(pa.array(np.argsort(np.concatenate(order), kind="stable")))
    return pa.concat_arrays([pa.array(["0"]), pool.slice(1)])


def _labels(prefix: str, numbers: np.ndarray, suffix: str = "") -> pa.Array:
    """`prefix<n>suffix` for every n, column-wise."""
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), suffix, "")


def chunk_frame(
    seed: int, index: int, rows: int, pool: pa.Array, groups: tuple[pa.Array, pa.Array]
) -> pl.DataFrame:
    """Chunk `index` of the file: `rows` rows of whole accounts (the last one may be cut),
    shuffled. Its own RNG stream, so chunks are independent of each other."""
    rng = np.random.default_rng([seed, index])
    # Accounts: 1..12 currencies each; draw more than enough, keep those that fill `rows`.
    drawn = rng.integers(1, MAX_CCYS_PER_ACCOUNT + 1, rows // 3 + 64)
    ends = np.cumsum(drawn)
    accounts = int(np.searchsorted(ends, rows)) + 1
    assert ends[-1] >= rows, "drew too few accounts"
    counts = drawn[:accounts].copy()
    counts[-1] -= ends[accounts - 1] - rows
    account_of = np.repeat(np.arange(accounts), counts)
    nth = np.arange(rows) - np.repeat(ends[:accounts] - drawn[:accounts], counts)
    first_ccy = rng.integers(0, len(CCYS), accounts)
    ccy = CCYS[(first_ccy[account_of] + nth) % len(CCYS)]

    # Users own 1-3 accounts on average; serials make names and accountUUIDs globally unique.
    users = accounts // 2 + 1
    base = np.int64(index) << 32
    user_of = rng.integers(0, users, accounts)
    user_uuid = uuid_text(rng, users)
    desk = rng.random(users) < DESK_SHARE
    user_no = base + np.arange(users)
    email = _labels("user", user_no, "@example.com")
    user_name = pc.if_else(pa.array(desk), _labels("Treasury Desk ", user_no, ", Ops"), email)
    email = pc.if_else(pa.array(desk), pa.scalar(None, pa.string()), email)
    account_uuid = uuid_text(rng, accounts, serial=base + np.arange(accounts))
    group_of = rng.integers(0, GROUPS, accounts)
    corporate = desk[user_of] | (rng.random(accounts) < 0.05)
    system = rng.random(accounts) < SYSTEM_SHARE
    sub_type = SUB_MAIN_TYPES[rng.integers(0, len(SUB_MAIN_TYPES), accounts)]

    order = rng.permutation(rows)  # shuffle the rows: the file is not in report order
    acc = pa.array(account_of[order])
    usr = pa.array(user_of[account_of[order]])
    group_uuid, group_label = groups
    grp = pa.array(group_of[account_of[order]])
    columns: dict[str, pa.Array] = {
        "userUUID": user_uuid.take(usr),
        "accountUUID": account_uuid.take(acc),
        "Account Group UUID": group_uuid.take(grp),
        "Account Group": group_label.take(grp),
        "User": user_name.take(usr),
        "Email": email.take(usr),
        "mainType": pa.array(np.where(corporate, "Corporate", "Client")).take(acc),
        "subMainType": pa.array(sub_type).take(acc),
        "Ccy": pa.array(ccy[order]),
        "Account in Ledger": pa.repeat(pa.scalar("TRUE"), rows),
        "System Account": pa.array(np.where(system, "TRUE", "FALSE")).take(acc),
    }
    all_zero = rng.random(rows) < ALL_ZERO_SHARE
    for name in AMOUNT_COLUMNS:
        if name in RETIRED:
            columns[name] = pa.repeat(pa.scalar("0"), rows)
            continue
        picks = rng.integers(1, len(pool), rows)
        zero = all_zero | (rng.random(rows) < ZERO_SHARE.get(name, DEFAULT_ZERO_SHARE))
        picks[zero] = 0
        columns[name] = pool.take(pa.array(picks))
    return pl.from_arrow(pa.table(columns))  # type: ignore[return-value]


def generate(path: Path, rows: int, seed: int = 0, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Path:
    """Write the report CSV of `rows` rows to `path` (LF line ends, quoting only if needed)."""
    rng = np.random.default_rng([seed, 1 << 40])
    pool = amount_pool(rng)
    group_labels = pa.array(["Default", *(f"Desk {n:02d}" for n in range(1, GROUPS))])
    groups = (uuid_text(rng, GROUPS), group_labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.write((",".join(COLUMNS) + "\n").encode())
        for index, start in enumerate(range(0, rows, chunk_rows)):
            frame = chunk_frame(seed, index, min(chunk_rows, rows - start), pool, groups)
            frame.write_csv(out, include_header=False, quote_style="necessary")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS)
    args = parser.parse_args()
    start = time.perf_counter()
    generate(args.out, args.rows, args.seed, args.chunk_rows)
    size = args.out.stat().st_size / 2**20
    seconds = time.perf_counter() - start
    print(f"{args.out}: {args.rows:,} rows, {size:,.0f} MiB in {seconds:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
