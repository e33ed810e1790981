"""``evb demo``: the scripted story on a fresh simulated card."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import click

from .render import ConsoleReporter, console


@click.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), help="Keep the card image here.")
def demo(workdir: Path | None) -> None:
    """Run the seed's fig. 15 story end to end on a new simulated card."""
    # the servers (FastAPI, pydantic, numpy) are imported here, not when the CLI starts: they are
    # most of its import time and only the demo needs them in-process
    from card import SimulatedCard
    from card.keys import wipe_key_store
    from keyfile import load_or_create_key, public_bytes
    from servers.keymgr.config import KeyManagerConfig
    from servers.keymgr.server import running as keymgr_running
    from servers.keymgr.server import statement_key_path
    from servers.tls import init_folder
    from servers.vault.server import running

    from ..demo import (
        run_backup_story,
        run_factor_story,
        run_key_story,
        run_rekey_story,
        run_trigger_story,
        run_wallet_story,
    )
    from ..idcard import IdCardSession
    from ..issuer import Issuer
    from ..keymgr_client import KeyManagerClient
    from ..session import WalletSession
    from ..transport import Transport, inprocess
    from ..transport.inprocess import open_image
    from ..triggers import VaultLink
    from ..vault_client import VaultClient

    with tempfile.TemporaryDirectory(prefix="evb-demo-") as tmp:
        base = workdir or Path(tmp)
        base.mkdir(mode=0o700, parents=True, exist_ok=True)  # keys, databases and card images
        issuer = Issuer.load_or_create(base / "issuer-key.pem")
        issuers = (issuer.public_key,)

        def manufacture(image: Path, **options: int) -> None:
            """A card as its issuer hands it out: attested, not yet personalized."""
            SimulatedCard.manufacture(image=image, **options)
            with open_image(image) as transport:
                issuer.attest(WalletSession(transport))

        @contextmanager
        def held(path: Path) -> Iterator[tuple[SimulatedCard, Transport]]:
            """A card image in the in-process reader, and the card itself, to break its key store."""
            card = SimulatedCard.open(path)
            try:
                transport = inprocess.connect_card(card)
                try:
                    yield card, transport
                finally:
                    transport.close()
            finally:
                card.close()

        image = base / "demo-card.img"
        manufacture(image)
        console.print(f"[bold]Electronic value backup demo[/] (card image {image})")
        reporter = ConsoleReporter()
        small = base / "demo-card-small.img"
        manufacture(small, size=8192, index_capacity=16)
        third, fresh = base / "demo-card-keys.img", base / "demo-card-fresh.img"
        manufacture(third)
        manufacture(fresh)
        id_image, spare, heir = base / "demo-id-card.img", base / "demo-card-spare.img", base / "demo-card-heir.img"
        SimulatedCard.issue_idcard("Hanako Yamada", "DL-2031-0042", date(2031, 3, 31), issuer.sign, image=id_image)
        manufacture(spare)
        manufacture(heir)
        with open_image(image) as transport:
            session = WalletSession(transport)
            ids = run_wallet_story(session, reporter)
            issued = init_folder(base / "tls")
            ca, tls = issued.ca_cert, issued.server
            console.print(f"\n[bold]Starting the vault on loopback[/] (SQLite {base / 'vault.db'}; HTTPS with a "
                          f"certificate from the demo's own CA {ca})")
            km_key = base / "keymgr-key.pem"
            trusted = public_bytes(load_or_create_key(statement_key_path(km_key)).public_key())
            with running(f"sqlite:///{base / 'vault.db'}", base / "vault-key.pem", tls, keymgr_key=trusted,
                         issuers=issuers) as url:
                console.print(f"vault at {url}")
                with VaultClient(url, ca=ca) as vault:
                    run_backup_story(session, vault, ids, reporter)
                with open_image(small) as small_card, VaultLink(url, ca=ca) as link:
                    run_trigger_story(WalletSession(small_card), link, reporter)
                console.print(f"\n[bold]Starting the key manager on loopback[/] (SQLite {base / 'keymgr.db'}; HTTPS)")
                with keymgr_running(f"sqlite:///{base / 'keymgr.db'}", km_key, base / "keymgr-master.key",
                                    KeyManagerConfig(issuers=issuers, vault_url=url, vault_ca=ca), tls=tls) as km_url, \
                        KeyManagerClient(km_url, ca=ca) as keymgr, VaultClient(url, ca=ca) as vault, \
                        open_image(third) as old, held(fresh) as (fresh_card, new), open_image(heir) as heir_card:
                    run_key_story(WalletSession(old), WalletSession(new), vault, keymgr, reporter)
                    run_rekey_story(WalletSession(new), lambda: wipe_key_store(fresh_card.eeprom), vault, keymgr,
                                    reporter, WalletSession(heir_card))
                    with open_image(id_image) as id_card, open_image(spare) as spare_card:
                        run_factor_story(WalletSession(new), WalletSession(spare_card), IdCardSession(id_card),
                                         keymgr, reporter)
        console.print("\n[bold green]Demo complete.[/]")
