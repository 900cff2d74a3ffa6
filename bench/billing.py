"""Billing benchmark: rate 100,000 ended calls of a three-level tenant chain.

    python -m bench.billing [--calls 100000] [--prefixes 5000] [--quick]

Starts the embedded database in a temporary directory, makes an operator, a reseller (+20 %)
and a customer (+50 %) with a voice rate table of `--prefixes` prefixes, inserts `--calls`
ended dial attempts of the customer as the dialer and Twilio's status callback leave them,
and runs the real rater pass (`billing.rater.Rater.run_once`: read, price, insert two records
per call, charge both accounts exactly once). The baseline is the pure arithmetic alone
(prefix match in memory, billed seconds, amount) for the same calls. Figures go to stdout; the
last line is JSON with at least `calls`, `records`, `records_per_s` and
`arithmetic_calls_per_s`.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.common import HubStack, Result, clean_up_run_dir, log, print_report, run_to_completion
from billing import accounts, rates
from billing.pricing import PriceBook
from billing.rater import Rater, call_event
from billing.rating import apply_markups, call_amount, to_micros
from hub.ids import new_id, utcnow
from hub.tenancy import create_tenant


async def run(args: argparse.Namespace) -> Result:
    root = Path(tempfile.mkdtemp(prefix="bench-billing-"))
    stack = HubStack(root, "bench_billing")
    succeeded = False
    try:
        await stack.start_database()
        ctx = await stack.open_context()
        rng = random.Random(args.seed)
        op = await create_tenant(ctx, "bench-op", "Operator", level="operator")
        rs = await create_tenant(ctx, "bench-rs", "Reseller", level="reseller", parent=op)
        cu = await create_tenant(ctx, "bench-cu", "Customer", level="customer", parent=rs)
        group = await rates.create_group(ctx, op["_id"], "Standard", "voice", "USD")
        prefixes = sorted(
            {str(rng.randint(1, 99)) + str(rng.randint(0, 99999)) for _ in range(args.prefixes)}
        )
        rows = "\n".join(
            f"{p},{rng.randint(1, 500) / 1000:.3f},{rng.choice(['60/60', '6/6', '30/6'])}" for p in prefixes
        )
        await rates.import_rates(
            ctx, group, f"prefix,price,increment\n1,0.10,60/60\n{rows}\n".encode(), "r.csv"
        )
        for tenant, markup in ((rs, 20), (cu, 50)):
            await accounts.configure(
                ctx, tenant["_id"], {"voice_group_id": group["_id"], "markup_pct": markup}
            )
            await accounts.top_up(
                ctx, tenant["_id"], to_micros("1000000"), by="bench", by_tenant_id=op["_id"]
            )
        now = utcnow()
        attempts = []
        for _ in range(args.calls):
            number = "+" + rng.choice(prefixes) + str(rng.randint(10**5, 10**6 - 1))
            seconds = rng.randint(1, 600)
            attempts.append(
                {
                    "_id": new_id(), "tenant_id": cu["_id"], "campaign_id": None, "target_id": None,
                    "number": number, "placed_at": now - timedelta(seconds=seconds + 20),
                    "answered_at": now - timedelta(seconds=seconds), "ended_at": now,
                    "outcome": "answered", "call_sid": f"CA{new_id()}", "duration": seconds,
                }
            )  # fmt: skip
        for i in range(0, len(attempts), 5000):
            await ctx.db.dial_attempts.insert_many(attempts[i : i + 5000], ordered=False)
        log(f"{args.calls} calls and {len(prefixes) + 1} prefixes loaded")

        # baseline: the arithmetic alone (in-memory match, markups, billed seconds, amount)
        book = PriceBook(ctx)
        table = await book.table(group["_id"])
        assert table is not None
        started = time.perf_counter()
        total = 0
        for attempt in attempts:
            event = call_event(attempt)
            assert event is not None
            rate = table.match(event["number"])
            assert rate is not None
            tariff = apply_markups(rates.tariff_of(rate), [20, 50])
            total += call_amount(tariff, event["seconds"])[1]
        arithmetic_s = time.perf_counter() - started

        started = time.perf_counter()
        charged = await Rater(ctx).run_once()
        rater_s = time.perf_counter() - started
        again = time.perf_counter()
        second = await Rater(ctx).run_once()
        rerun_s = time.perf_counter() - again
        account = await accounts.get_account(ctx, cu["_id"])
        assert account is not None
        spent = to_micros("1000000") - int(account["balance_micros"])
        if spent != total or second != 0:
            raise RuntimeError(f"charged {spent} against {total} computed; second pass charged {second}")
        result: Result = {
            "calls": args.calls,
            "prefixes": len(prefixes) + 1,
            "records": charged,
            "rater_s": round(rater_s, 2),
            "records_per_s": round(charged / rater_s, 1),
            "calls_per_s": round(args.calls / rater_s, 1),
            "arithmetic_s": round(arithmetic_s, 3),
            "arithmetic_calls_per_s": round(args.calls / arithmetic_s, 1),
            "rerun_s": round(rerun_s, 2),
            "customer_charged_micros": spent,
        }
        succeeded = True
        return result
    finally:
        await stack.stop()
        clean_up_run_dir(root, succeeded=succeeded, keep=args.keep, contents="database")


def report(result: Result) -> None:
    rows = [
        ("calls rated", f"{result['calls']} ({result['prefixes']} prefixes)"),
        ("records written and charged", str(result["records"])),
        ("rater pass", f"{result['rater_s']} s ({result['records_per_s']} records/s)"),
        (
            "pure arithmetic baseline",
            f"{result['arithmetic_s']} s ({result['arithmetic_calls_per_s']} calls/s)",
        ),
        ("second pass (nothing new)", f"{result['rerun_s']} s"),
    ]
    print_report("Billing benchmark", rows, result, name_width=30)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.billing", description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=100_000, help="ended calls to rate (100,000)")
    p.add_argument("--prefixes", type=int, default=5000, help="rate table prefixes (5000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="10,000 calls")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    if args.quick:
        args.calls = 10_000
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report(run_to_completion(lambda: run(args)))


if __name__ == "__main__":
    main()
