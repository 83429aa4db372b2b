"""Shell completion through the printed script, in a real bash: `complete -p` shows it registered,
and the completion function, called as bash calls it on <TAB>, offers the right words."""

from __future__ import annotations

import shutil
import subprocess

import pytest

BASH = shutil.which("bash")


def complete(line: str, cwd) -> list[str]:
    """What bash offers for `line` + <TAB>, through `eval "$(bigmodel completion bash)"`."""
    script = (
        'eval "$(bigmodel completion bash)"\n'
        "complete -p bigmodel\n"
        f"COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}\n"
        'read -ra COMP_WORDS <<< "$COMP_LINE"; COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))\n'
        "_bigmodel\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run([BASH, "--norc", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    registered, *offered = result.stdout.splitlines()
    assert registered == "complete -F _bigmodel bigmodel"
    return [o for o in offered if o]


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_completes_subcommands_options_keys_and_runs(tmp_path):
    run = tmp_path / "outputs" / "train" / "2026-01-02_03-04-05-006-abcdef"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.ckpt").write_bytes(b"")
    assert complete("bigmodel tr", tmp_path) == ["train"]
    assert set(complete("bigmodel ", tmp_path)) >= {"train", "test", "runs", "diff", "completion", "report"}
    # bash completes the text after `=` (a word break): the options alone are offered.
    assert complete("bigmodel train model=tr", tmp_path) == ["transformer"]
    assert "vit" in complete("bigmodel train model=", tmp_path)
    assert complete("bigmodel train optimizer.l", tmp_path) == ["optimizer.lr=", "optimizer.lr_decay="]
    assert complete("bigmodel train trainer.max_e", tmp_path) == ["trainer.max_epochs="]
    assert "callbacks.model_summary." in complete("bigmodel train callbacks.", tmp_path)
    assert complete("bigmodel train ckpt_path=outputs/train/", tmp_path) == [f"outputs/train/{run.name}/"]
    assert complete(f"bigmodel test ckpt_path=outputs/train/{run.name}/checkpoints/", tmp_path) == [
        f"outputs/train/{run.name}/checkpoints/best.ckpt"
    ]
    assert complete("bigmodel diff out", tmp_path) == ["outputs/"]


def test_completion_for_an_unknown_shell_is_one_line(cli):
    code, _, err = cli("completion", "tcsh")
    assert code == 2 and "unknown shell 'tcsh'" in err and "bash, zsh, fish" in err


ZSH_CALL = """eval "$(bigmodel completion zsh)"
COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}; _bigmodel; print -rl -- $COMPREPLY
"""
FISH_CALL = "bigmodel completion fish | source; complete -C {line!r}"


@pytest.mark.parametrize(("shell", "call"), [("zsh", ZSH_CALL), ("fish", FISH_CALL)])
def test_zsh_and_fish_complete_through_their_scripts(shell, call, tmp_path):
    """zsh (bash's function through bashcompinit; it once stopped at `${COMP_LINE:0:COMP_POINT}`)
    and fish offer whole words: neither breaks words at `=`."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed (.ci/run installs it)")

    def offered(line: str) -> list[str]:
        result = subprocess.run(
            [shell, "-c", call.format(line=line)], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0 and not result.stderr, result.stderr
        return [w for w in result.stdout.splitlines() if w]

    assert offered("bigmodel tr") == ["train"]
    assert offered("bigmodel train model=tr") == ["model=transformer"]
    assert offered("bigmodel train optimizer.l") == ["optimizer.lr=", "optimizer.lr_decay="]
