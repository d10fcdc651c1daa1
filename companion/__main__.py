"""`python -m companion` runs the same command line as `companion`."""

from companion.cli import main

if __name__ == "__main__":
    main()
