"""`python -m cmr_vault` is the `cmr-vault` command."""

from cmr_vault.cli import main

main()
