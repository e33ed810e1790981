"""``evb card serve`` (a simulated card in a virtual reader), ``evb readers``, ``evb bench pcsc``."""

from __future__ import annotations

import logging
import statistics
from contextlib import nullcontext
from pathlib import Path

import click
from click.core import ParameterSource
from rich.table import Table

from card.bridge.vpcd import BASE_PORT, DEFAULT_HOST, EchoCard, VpcdBridge

from ..transport.open import default_image
from .errors import CliFail
from .options import card_image_option, json_option
from .render import console, print_json


@click.command()
@card_image_option
@click.option("--kind", type=click.Choice(["wallet", "idcard", "echo"]), default="wallet", show_default=True,
              help="idcard: an ID card image ('evb card issue-id'); echo: a card answering 90 00 to everything "
                   "(a latency baseline).")
@click.option("--slot", type=click.IntRange(0, 1), default=0, show_default=True, help="vpcd reader slot.")
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Where pcscd's vpcd driver listens.")
@click.option("--port", type=click.IntRange(1, 65535), help=f"Driver port [default: {BASE_PORT} + slot].")
@click.option("--protocol", type=click.Choice(["T=0", "T=1"]),
              help="The protocol the card follows. vpcd passes it no PPS, so by default it keeps to T=0, the "
                   "first its ATR offers (61xx for data without Le); T=1 if every host uses T=1.")
@click.option("--javacard", is_flag=True,
              help="Serve the Java Card applet (javacard/) of --kind in jCardSim instead of the Python card; "
                   "needs the kit in $JC_HOME. With --card-image FILE the applet's memory lives in FILE "
                   "(created if new) and survives restarts; without, a new card.")
def serve(card_image: Path | None, kind: str, slot: int, host: str, port: int | None, protocol: str | None,
          javacard: bool) -> None:
    """Insert a simulated card into pcscd's virtual reader and serve it until Ctrl-C."""
    from apdu.idcard import AID_IDCARD
    from apdu.wallet import AID_WALLET
    from card import ATR, SimulatedCard
    from card.eeprom import ImageError
    from card.idcard import IdCardApplet
    from card.javacard import APPLET_CLASS, ID_APPLET_CLASS, AppletCard, KitError, build

    logging.getLogger("evb.bridge").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(message)s")
    typed = click.get_current_context().get_parameter_source("card_image") == ParameterSource.COMMANDLINE
    if javacard and kind == "echo":
        raise click.UsageError("--javacard serves a wallet or an ID card, not the echo card")
    if javacard:
        console.print("Building the applet (scripts/javacard build) if its sources changed…")
        applet_class, aid = (ID_APPLET_CLASS, AID_IDCARD) if kind == "idcard" else (APPLET_CLASS, AID_WALLET)
        # the applet's heap is its own file format: only a --card-image typed here (not
        # EVB_CARD_IMAGE, which names a Python card's image) keeps the applet across restarts
        heap = card_image if typed else None
        try:
            card: SimulatedCard | EchoCard | AppletCard = AppletCard(build(), applet_class, aid, state_file=heap)
        except (KitError, ImageError) as exc:
            raise CliFail(str(exc).splitlines()[0]) from exc
        label = "ID-card" if kind == "idcard" else "wallet"
        what = (f"the {label} applet (Java Card, in jCardSim) kept in {heap}" if heap is not None
                else f"a new {label} applet (Java Card, in jCardSim)")
    elif kind == "echo":
        card = EchoCard(ATR)
        what = "echo card"
    else:
        image = card_image or default_image()
        try:
            card = SimulatedCard.open(image)
        except FileNotFoundError as exc:
            raise CliFail(f"no card image at {image} (create one with 'evb card init')") from exc
        except ImageError as exc:
            raise CliFail(str(exc)) from exc
        is_id = isinstance(card.applets[0], IdCardApplet)
        if is_id != (kind == "idcard"):
            card.close()
            raise CliFail(f"{image} is {'an ID card' if is_id else 'a wallet card'}, not --kind {kind}")
        what = f"{'ID card' if is_id else 'card'} {image}"
    bridge = VpcdBridge(card, host, port if port is not None else BASE_PORT + slot, protocol=protocol)
    console.print(f"Serving {what} in vpcd slot {slot} ({host}:{bridge.port}); Ctrl-C to remove it.")
    try:
        bridge.serve_forever()
    except KeyboardInterrupt:
        bridge.stop()
        console.print("Card removed.")
    finally:
        if isinstance(card, AppletCard):
            card.close()


@click.command()
@json_option
def readers(as_json: bool) -> None:
    """List PC/SC readers, the ATR of the card in each and whether a program uses it (from pcscd's
    reader state: no card is connected to)."""
    from ..transport.pcsc import describe_readers

    found = describe_readers()
    if as_json:
        print_json(found)
        return
    table = Table(title="PC/SC readers", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("Reader")
    table.add_column("Card (ATR)")
    table.add_column("State")
    for r in found:
        state = "held exclusively" if r.exclusive else "in use" if r.in_use else ""
        table.add_row(str(r.index), r.name, r.atr.hex(" ").upper() if r.atr else "no card", state)
    console.print(table)


@click.group()
def bench() -> None:
    """Benchmarks, each against a baseline measured in the same run."""


@bench.command("pcsc")
@click.option("--rounds", type=click.IntRange(10, 100000), default=300, show_default=True,
              help="Round trips per APDU and card.")
@click.option("--no-quickack", is_flag=True, help="Bridge without TCP_QUICKACK: the old 40 ms stall.")
@json_option
@click.option("--javacard/--no-javacard", default=None,
              help="Also measure the Java Card applet (jCardSim) in the same slot [default: when $JC_HOME is set].")
def bench_pcsc(rounds: int, no_quickack: bool, as_json: bool, javacard: bool | None) -> None:
    """Our card (and the Java Card applet) vs an echo card through the same pcscd + vpcd path:
    medians and ratios."""
    import os

    from card.javacard import KitError, build

    from ..bench import run_pcsc_bench

    applet = None
    if javacard or (javacard is None and os.environ.get("JC_HOME")):
        try:
            applet = build()
        except KitError as exc:
            raise CliFail(str(exc).splitlines()[0]) from exc
    with console.status("measuring round trips through pcscd...") if not as_json else nullcontext():
        result = run_pcsc_bench(rounds, quickack=not no_quickack, applet=applet)
    if as_json:
        print_json(result)
        return
    table = Table(title=f"APDU round trips through pcscd + vpcd ({rounds} each, interleaved)", title_justify="left")
    columns = ["APDU", "our card (ms)", "echo card (ms)", "ratio"]
    if applet is not None:
        columns += ["applet (ms)", "applet ratio"]
    for col in columns:
        table.add_column(col, justify="right" if col != "APDU" else "left")

    def applet_cells(ms: float | None, echo_ms: float) -> list[str]:
        return [] if ms is None else [f"{ms:.3f}", f"{ms / echo_ms:.2f}"]

    for row in result.rows:
        table.add_row(row.name, f"{row.ours_ms:.3f}", f"{row.echo_ms:.3f}", f"{row.ratio:.2f}",
                      *applet_cells(row.applet_ms, row.echo_ms))
    applet_median = (statistics.median(r.applet_ms for r in result.rows if r.applet_ms is not None)
                     if applet is not None else None)
    table.add_row("all (median of medians)", f"{result.ours_ms:.3f}", f"{result.echo_ms:.3f}", f"{result.ratio:.2f}",
                  *applet_cells(applet_median, result.echo_ms), style="bold")
    console.print(table)
    if result.applet_inprocess_apdus_per_s is not None and result.python_inprocess_apdus_per_s is not None:
        console.print(f"In process, GET CARD INFO: applet {result.applet_inprocess_apdus_per_s:,.0f} APDU/s, "
                      f"Python card {result.python_inprocess_apdus_per_s:,.0f} APDU/s "
                      f"(ratio {result.applet_inprocess_apdus_per_s / result.python_inprocess_apdus_per_s:.2f}).")


@bench.command("login")
@click.option("--rounds", type=click.IntRange(5, 10000), default=40, show_default=True)
@json_option
def bench_login(rounds: int, as_json: bool) -> None:
    """Key manager: a refused login for an unknown name vs a wrong password, interleaved."""
    from ..bench import run_login_bench

    with console.status("timing refused logins (Argon2id, 64 MiB)...") if not as_json else nullcontext():
        result = run_login_bench(rounds)
    if as_json:
        print_json({"rounds": result.rounds, "unknown_name_ms": result.unknown_name_ms,
                    "wrong_password_ms": result.wrong_password_ms, "ratio": result.ratio})
        return
    console.print(f"median refused login over {rounds} rounds: unknown name {result.unknown_name_ms:.1f} ms, "
                  f"wrong password {result.wrong_password_ms:.1f} ms, ratio {result.ratio:.3f}")


@bench.command("rotation")
@click.option("--cards", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--values", type=click.IntRange(1, 200), default=200, show_default=True, help="Per card.")
@click.option("--vault-db", help="The vault's database (postgresql://…) [default: SQLite in a temporary directory].")
@json_option
def bench_rotation(cards: int, values: int, vault_db: str | None, as_json: bool) -> None:
    """Key rotation throughput (seed E7) against encrypted backup of the same values, side by side."""
    from ..bench import run_rotation_bench
    from .render import progress_bar

    with progress_bar("backing up, then rotating", as_json) as bar:
        result = run_rotation_bench(cards, values, vault_db, lambda what, done, total: bar(done, total))
    if as_json:
        print_json({"cards": cards, "values": cards * values, "backup_per_s": result.backup_per_s,
                    "backup_one_per_s": result.backup_one_per_s, "rotation_per_s": result.rotation_per_s,
                    "ratio": result.ratio})
        return
    console.print(f"{cards * values} values on {cards} card(s): encrypted backup {result.backup_per_s:.1f} values/s "
                  f"({result.backup_one_per_s:.1f} one a request), rotation {result.rotation_per_s:.1f} values/s "
                  f"(rotation costs {result.ratio:.2f}x a backup)")


@bench.command("fingerprint")
@click.option("--fingers", type=click.IntRange(2, 100000), default=1000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@json_option
def bench_fingerprint(fingers: int, seed: int, as_json: bool) -> None:
    """False accept and false reject rates of the fingerprint matcher over a synthetic population,
    and the worst-case match's time and peak memory."""
    import statistics

    from rich.table import Table

    from ..bench import run_fingerprint_bench, run_worst_case_match
    from .render import progress_bar

    with progress_bar("matching", as_json) as bar:
        result = run_fingerprint_bench(fingers, seed, bar)
    worst = run_worst_case_match()
    thresholds = sorted({0.25, 0.30, 0.35, 0.40, 0.45, 0.50, result.threshold})
    if as_json:
        print_json({"fingers": fingers, "threshold": result.threshold,
                    "genuine_median": statistics.median(result.genuine),
                    "impostor_median": statistics.median(result.impostor),
                    "rates": [{"threshold": t, "far": result.rates(t)[0], "frr": result.rates(t)[1]}
                              for t in thresholds],
                    "worst_case": {"minutiae": worst.minutiae, "seconds": worst.seconds,
                                   "peak_bytes": worst.peak_bytes}})
        return
    table = Table(title=f"Fingerprint matcher, {fingers} fingers",
                  caption=f"median score: genuine {statistics.median(result.genuine):.3f}, "
                          f"impostor {statistics.median(result.impostor):.3f}")
    for column in ("threshold", "FAR", "FRR"):
        table.add_column(column, justify="right")
    for t in thresholds:
        far, frr = result.rates(t)
        table.add_row(f"{t:.2f}" + (" (used)" if t == result.threshold else ""), f"{far:.2%}", f"{frr:.2%}")
    console.print(table)
    console.print(f"worst-case match ({worst.minutiae} against {worst.minutiae} minutiae): "
                  f"{worst.seconds:.2f} s, peak memory {worst.peak_bytes / 2**20:.1f} MiB")


@bench.command("image")
@click.option("--pairs", type=click.IntRange(10, 1_000_000), default=2000, show_default=True,
              help="STORE+DELETE pairs on each card.")
@click.option("--dir", "folder", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Where the image file goes (its disk's sync cost counts) [default: a temporary folder].")
@json_option
def bench_image(pairs: int, folder: Path | None, as_json: bool) -> None:
    """STORE+DELETE on a card whose EEPROM is an image file vs the same card in memory, interleaved."""
    from ..bench import run_image_bench

    with console.status("storing and deleting on both cards...") if not as_json else nullcontext():
        result = run_image_bench(pairs, folder)
    if as_json:
        print_json({"pairs": result.pairs, "memory_apdu_s": result.memory_apdu_s,
                    "image_apdu_s": result.image_apdu_s, "ratio": result.ratio, "sync_ms": result.sync_ms,
                    "one_sync_bound_apdu_s": result.one_sync_bound})
        return
    console.print(f"STORE+DELETE, {result.pairs} pairs each, median of batches: image file "
                  f"{result.image_apdu_s:,.0f} APDU/s, in memory {result.memory_apdu_s:,.0f} APDU/s, "
                  f"ratio {result.ratio:.2f} (goal >= 0.5); one fdatasync here takes {result.sync_ms:.2f} ms, "
                  f"so one per APDU allows {result.one_sync_bound:,.0f} APDU/s")


@bench.command("startup")
@click.option("--rounds", type=click.IntRange(3, 1000), default=15, show_default=True,
              help="Runs of each command, interleaved.")
@json_option
def bench_startup(rounds: int, as_json: bool) -> None:
    """Start-up: 'evb --version', 'evb card info' and 'evb card list' beside 'python3 -c pass' (goal: ratio <= 2)."""
    from ..bench import run_startup_bench

    with console.status("starting evb and python3...") if not as_json else nullcontext():
        rows = run_startup_bench(rounds)
    if as_json:
        print_json({"rounds": rounds, "rows": [{"command": r.name, "median_ms": round(r.median_ms, 1),
                                                "ratio": round(r.ratio, 2)} for r in rows]})
        return
    table = Table(title=f"Start-up, median of {rounds} interleaved runs", title_justify="left",
                  caption="ratio: against python3 -c pass in the same run; goal <= 2")
    for col in ("command", "median (ms)", "ratio"):
        table.add_column(col, justify="left" if col == "command" else "right")
    for r in rows:
        table.add_row(r.name, f"{r.median_ms:.1f}", f"{r.ratio:.2f}")
    console.print(table)
