"""A stand-in child for the child-guard tests: sleeps until it is ended."""

import time

if __name__ == "__main__":
    time.sleep(600)
