"""What every refused command must show: exit code 2 and one plain line naming the problem."""
from fofakd.cli import main


def fails_cleanly(args: list[str], capsys, message: str) -> str:
    """Run `fofakd args`; assert it exits 2 with one line on stderr, no traceback, holding `message`."""
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err
