"""`python -m mt_cli` runs the same CLI as the `mt-cli` console script."""

from mt_cli.cli.main import main

if __name__ == "__main__":
    main()
