"""The forbidden-commands check: destructive shell and Python code is refused, everyday code runs.

The tables call the check itself (nothing of a refused command is ever run here); the computer-level tests
run real code in the real shell and the real Python kernel, using only refused commands that would fail
harmlessly if the check ever let them through.
"""

from __future__ import annotations

import computer_support
import pytest
from computer_support import text
from hypothesis import given, settings
from hypothesis import strategies as st

from oi_local.computer import Computer
from oi_local.computer.forbidden import DEFAULT_FORBIDDEN_COMMANDS, find_forbidden

computer = computer_support.computer
scratch = computer_support.scratch

PROJECT = "/work/project"  # the folder the table's shell code starts in

# (code, what the refusal must say it does)
REFUSED_SHELL = [
    ("rm -rf /", "removes / (the whole machine) recursively"),
    ("/bin/rm -rf /", "removes /"),
    ("rm -fr /", "removes /"),
    ("rm -r -f /", "removes /"),
    ("rm -R /", "removes /"),
    ("rm --recursive --force /", "removes /"),
    ("rm / -rf", "removes /"),
    ('rm -rf "/"', "removes /"),
    ("rm -rf / # tidy up", "removes /"),
    ("rm -rf //", "removes /"),
    ("rm -rf /tmp/../", "removes /"),
    ("\\rm -rf /", "removes /"),
    ("grm -rf /", "removes /"),
    ("rm -rf --no-preserve-root /tmp/x", "--no-preserve-root"),
    ("rm -rf /*", "removes everything in /"),
    ("rm -rf ~", "removes the home folder"),
    ("rm -rf ~/", "removes the home folder"),
    ("rm -rf ~/*", "removes everything in the home folder"),
    ("rm -f ~/*", "removes everything in the home folder"),
    ("rm -rf $HOME", "removes the home folder"),
    ('rm -rf "$HOME/"', "removes the home folder"),
    ("rm -rf ${HOME}/*", "removes everything in the home folder"),
    ("rm -rf ~alice", "removes the home folder /home/alice"),
    ("rm -rf /etc", "removes the system folder /etc"),
    ("rm -rf /usr", "removes the system folder /usr"),
    ("rm -rf /usr/lib", "removes the system folder /usr/lib"),
    ("rm -rf /boot/", "removes the system folder /boot"),
    ("rm -rf /home", "removes the system folder /home"),
    ("rm -rf /bin /sbin", "removes the system folder /bin"),
    ("cd / && rm -rf *", "removes everything in /"),
    ("cd ~; rm -rf ./*", "removes everything in the home folder"),
    ("cd; rm -rf .", "removes the home folder"),
    ("echo x; rm -rf /", "removes /"),
    ("true && rm -rf / || true", "removes /"),
    ("ls | rm -rf /", "removes /"),
    ("sleep 1 & rm -rf /", "removes /"),
    ("echo start\nrm -rf /\necho end", "removes /"),
    ("sudo rm -rf /", "removes /"),
    ("sudo -n rm -rf /", "removes /"),
    ("sudo -u root -- rm -rf /", "removes /"),
    ("sudo -nu root rm -rf /", "removes /"),
    ("doas rm -rf /", "removes /"),
    ("env X=1 nice -n 5 rm -rf /", "removes /"),
    ("X=1 rm -rf /", "removes /"),
    ("nohup rm -rf / &", "removes /"),
    ("time rm -rf /", "removes /"),
    ("timeout 5 rm -rf /", "removes /"),
    ("command rm -rf /", "removes /"),
    ("exec rm -rf /", "removes /"),
    ("xargs -0 rm -rf ~", "removes the home folder"),
    ("env -S 'rm -rf /'", "removes /"),
    ("bash -c 'rm -rf /'", "removes /"),
    ("sh -c \"sudo rm -rf ~\"", "removes the home folder"),
    ("bash -ec 'rm -rf /'", "removes /"),
    ("bash -c \"bash -c 'rm -rf /'\"", "removes /"),
    ("su -c 'rm -rf /' root", "removes /"),
    ("eval 'rm -rf /'", "removes /"),
    ("echo 'rm -rf /' | sh", "removes /"),
    ("bash <<EOF\nrm -rf /\nEOF", "removes /"),
    ("bash <<< 'rm -rf /'", "removes /"),
    ("echo $(rm -rf /)", "removes /"),
    ("x=`rm -rf /`", "removes /"),
    ("if true; then rm -rf /; fi", "removes /"),
    ("for i in 1; do rm -rf /; done", "removes /"),
    ("{ rm -rf /; }", "removes /"),
    ("(rm -rf /)", "removes /"),
    ("python3 -c 'import shutil; shutil.rmtree(\"/\")'", "removes /"),
    ("find / -delete", "deletes everything in /"),
    ("find ~ -exec rm -rf {} +", "deletes everything in the home folder"),
    ("mv ~ /dev/null", "moves the home folder"),
    ("mv /etc /tmp/etc", "moves the system folder /etc"),
    ("dd if=/dev/zero of=/dev/sda", "writes over the disk device /dev/sda"),
    ("dd if=/dev/urandom of=/dev/nvme0n1 bs=1M", "writes over the disk device /dev/nvme0n1"),
    ("sudo dd of=/dev/disk2 if=x.img", "writes over the disk device /dev/disk2"),
    ("dd if=x.img of=/dev/mapper/root", "writes over the disk device"),
    ("cat /dev/zero > /dev/sda", "writes over the disk device /dev/sda"),
    ("echo x >/dev/sdb1", "writes over the disk device /dev/sdb1"),
    ("cat image.iso | sudo tee /dev/sdb", "writes over the disk device /dev/sdb"),
    ("cp disk.img /dev/mmcblk0", "writes over the disk device /dev/mmcblk0"),
    ("shred -n 1 /dev/sda", "writes over the disk device /dev/sda"),
    ("mkfs.ext4 /dev/sda1", "formats or wipes the device /dev/sda1"),
    ("sudo mkfs -t ext4 /dev/vdb", "formats or wipes the device /dev/vdb"),
    ("mkswap /dev/xvda2", "formats or wipes the device"),
    ("wipefs -a /dev/sda", "formats or wipes the device /dev/sda"),
    ("sgdisk --zap-all /dev/sda", "repartitions the disk device /dev/sda"),
    ("parted -s /dev/sda mklabel gpt", "repartitions the disk device /dev/sda"),
    ("diskutil eraseDisk APFS X disk2", "erases or repartitions a disk"),
    (":(){ :|:& };:", "fork bomb"),
    ("bomb() { bomb | bomb & }; bomb", "fork bomb"),
    ("f(){ f|f& };f", "fork bomb"),
    ("function boom { boom & boom & }; boom", "fork bomb"),
    ("bash -c ':(){ :|:& };:'", "fork bomb"),
    ("chmod -R 777 /", "changes the permissions of / (the whole machine) recursively"),
    ("sudo chown -R nobody /", "changes the owner of /"),
    ("chmod -R 000 /etc", "changes the permissions of the system folder /etc"),
    ("chmod --recursive 777 /usr", "changes the permissions of the system folder /usr"),
    ("chown -R me:me /*", "changes the owner of everything in /"),
    ("chgrp -R staff /var", "changes the group of the system folder /var"),
    ("chmod 000 /", "changes the permissions of /"),
]

ALLOWED_SHELL = [
    "rm -rf ./build",
    "rm -rf /tmp/x",
    "ls /",
    'echo "rm -rf /"',
    "grep -r foo /etc",
    "rm -rf build/ dist/ *.egg-info",
    "rm -rf ./*",
    "rm -rf node_modules && npm install",
    "rm -rf ~/.cache/pip",
    'rm -rf "$HOME/.cache/foo"',
    "rm -rf ~/project/build",
    "cd ~/project && rm -rf *",
    "rm -f /tmp/*.log",
    "rm -rf /tmp/*",
    "cd /tmp && rm -rf *",
    "sudo rm -rf /var/lib/apt/lists/*",
    "rm -rf /usr/local/lib/python3.11/site-packages/foo*",
    "rm -rf /opt/myapp",
    'rm -rf -- "$dir"',
    'rm -rf "${HOME:?}/${DIR:?}"',
    "for f in *.txt; do rm \"$f\"; done",
    "echo 'rm -rf /' > notes.txt",
    "cat <<'EOF' > notes.md\nrm -rf /\nEOF",
    "printf 'a; rm -rf /\\n'",
    "echo ':(){ :|:& };: is a fork bomb'",
    "f() { echo hi; }; f | f",
    "python3 -c 'print(\"rm -rf /\")'",
    "find . -name '*.pyc' -delete",
    "find ~ -name '*.log' -delete",
    "find /tmp/x -type f -delete",
    "git rm -r --cached .",
    "git clean -fdx",
    "docker rm -f web",
    "dd if=/dev/sda of=backup.img",
    "dd if=/dev/zero of=./disk.img bs=1M count=10",
    "cp /dev/sda disk.img",
    "cat /dev/sda | head -c 512 > mbr.bin",
    "echo hi > /dev/null 2>&1",
    "ls -la /dev/sda",
    "fdisk -l /dev/sda",
    "mkfs.ext4 disk.img",
    "shred secret.txt",
    "chmod -R 755 ./site",
    "chmod +x run.sh",
    "chown -R $USER ~/project",
    "chown -R me ~",
    "chmod 644 /etc/hosts.bak",
    "sudo chown -R $(whoami) /usr/local",
    "sudo chown -R www-data /var/lib/myapp /srv/www",
    "mv ~/a.txt ~/b.txt",
    "rmdir /tmp/empty",
    "command -v rm",
    "sudo apt-get install -y curl",
    "kill -9 $(pgrep -f myserver)",
    "x=$(ls /); echo $x",
]

REFUSED_PYTHON = [
    ("import shutil\nshutil.rmtree('/')", "removes / (the whole machine) recursively"),
    ("import shutil as s\ns.rmtree('/etc')", "removes the system folder /etc"),
    ("import shutil\nshutil.rmtree(path='/')", "removes /"),
    ("from shutil import rmtree\nimport os\nrmtree(os.path.expanduser('~'))", "removes the home folder"),
    ("from pathlib import Path\nimport shutil\nshutil.rmtree(Path.home())", "removes the home folder"),
    ("import shutil, os\nshutil.rmtree(os.environ['HOME'])", "removes the home folder"),
    ("import shutil, os\nshutil.rmtree(os.getenv('HOME'))", "removes the home folder"),
    ("import shutil, os\nshutil.rmtree(os.path.join('/', 'etc'))", "removes the system folder /etc"),
    ("from pathlib import Path\nimport shutil\nshutil.rmtree(Path('/') / 'usr')", "removes the system folder /usr"),
    ("import shutil\ntarget = '/'\nshutil.rmtree(target)", "removes /"),
    ("import os\nos.rmdir('/')", "removes /"),
    ("import os\nos.removedirs('/usr')", "removes the system folder /usr"),
    ("import os\nos.remove('/dev/sda')", "the disk device /dev/sda"),
    ("from pathlib import Path\nPath('/').rmdir()", "removes /"),
    ("from pathlib import Path\nPath.home().rmdir()", "removes the home folder"),
    ("import os\nos.system('rm -rf /')", "removes /"),
    ("import os\nos.system('sudo rm -fr ~')", "removes the home folder"),
    ("import os as o\no.system('rm -rf /*')", "removes everything in /"),
    ("from os import system\nsystem('rm -rf /')", "removes /"),
    ("import os\nhome = os.path.expanduser('~')\nos.system('rm -rf ' + home)", "removes the home folder"),
    ("import os\nos.system(f\"rm -rf {os.path.expanduser('~')}\")", "removes the home folder"),
    ("import os\nos.system('rm -rf %s' % '/')", "removes /"),
    ("import os\nos.system('rm -rf {}'.format('~'))", "removes the home folder"),
    ("import os\nos.popen('mkfs.ext4 /dev/sdb')", "formats or wipes the device /dev/sdb"),
    ("import subprocess\nsubprocess.run('rm -rf /', shell=True)", "removes /"),
    ("import subprocess\nsubprocess.run(['rm', '-rf', '/'])", "removes /"),
    ("import subprocess\nsubprocess.run(args=['rm', '-r', '-f', '/'])", "removes /"),
    ("import subprocess as sp\nsp.call(['sudo', 'rm', '-r', '-f', '/'])", "removes /"),
    ("import subprocess\nsubprocess.check_call('rm -fr ~', shell=True)", "removes the home folder"),
    ("import subprocess\nsubprocess.Popen(['bash', '-c', 'rm -rf ~'])", "removes the home folder"),
    ("import subprocess\nsubprocess.check_output('dd if=/dev/zero of=/dev/sda', shell=True)", "the disk device /dev/sda"),
    ("import subprocess\ncommand = ['chmod', '-R', '777', '/']\nsubprocess.run(command)", "changes the permissions of /"),
    ("import os\nos.execvp('rm', ['rm', '-rf', '/'])", "removes /"),
    ("import subprocess\nsubprocess.run('rm -rf /'.split())", "removes /"),
    ("import subprocess, shlex\ncommand = shlex.split('sudo rm -rf ~')\nsubprocess.run(command)", "removes the home folder"),
    ("exec(\"import shutil; shutil.rmtree('/')\")", "removes /"),
    ("open('/dev/sda', 'wb').write(b'0')", "writes over the disk device /dev/sda"),
    ("from pathlib import Path\nPath('/dev/nvme0n1').write_bytes(b'0')", "writes over the disk device"),
    ("import os\nwhile True:\n    os.fork()", "fork bomb"),
    ("!rm -rf /", "removes /"),
    ("x = 1\n!sudo rm -rf ~", "removes the home folder"),
    ("files = !rm -rf /", "removes /"),
    ("%system rm -rf /", "removes /"),
    ("%%bash\nrm -rf /", "removes /"),
    ("def clean():\n    import shutil\n    shutil.rmtree('/')", "removes /"),
]

ALLOWED_PYTHON = [
    "import shutil\nshutil.rmtree('./build')",
    "import shutil\nshutil.rmtree('/tmp/x')",
    "import shutil, tempfile\nd = tempfile.mkdtemp()\nshutil.rmtree(d)",
    "import shutil, os\nshutil.rmtree(os.path.join(os.path.expanduser('~'), '.cache', 'pip'))",
    "import os\nos.listdir('/')",
    "import os\nos.remove('notes.txt')",
    "import os\nos.unlink('/tmp/x.lock')",
    "from pathlib import Path\n(Path.home() / '.cache' / 'x').unlink()",
    "print('rm -rf /')",
    "x = '/'\nprint(x)",
    "import os\nos.system('ls /')",
    "import os\nos.system(f'rm -rf {path}')",
    "import subprocess\nsubprocess.run(['grep', '-r', 'foo', '/etc'])",
    "import subprocess\nsubprocess.run('rm -rf build', shell=True)",
    "import os\nos.fork()",
    "while True:\n    break",
    "open('/dev/sda', 'rb').read(512)",
    "!ls /",
    "%timeit sum(range(10))",
    "def f(:\n  pass",  # a syntax error: let through (it fails before it runs), without a crash
]


@pytest.mark.parametrize("code, what", REFUSED_SHELL, ids=[c for c, _ in REFUSED_SHELL])
def test_destructive_shell_is_refused(code, what):
    for forbidden in (DEFAULT_FORBIDDEN_COMMANDS, []):  # the classes do not depend on the user's list
        refusal = find_forbidden(code, forbidden, "shell", PROJECT)
        assert refusal is not None, code
        assert what in refusal.what and refusal.line in [line.strip() for line in code.splitlines()]


@pytest.mark.parametrize("code", ALLOWED_SHELL)
def test_everyday_shell_runs(code):
    assert find_forbidden(code, DEFAULT_FORBIDDEN_COMMANDS, "shell", PROJECT) is None


@pytest.mark.parametrize("code, what", REFUSED_PYTHON, ids=[c for c, _ in REFUSED_PYTHON])
def test_destructive_python_is_refused(code, what):
    for forbidden in (DEFAULT_FORBIDDEN_COMMANDS, []):
        refusal = find_forbidden(code, forbidden, "python")
        assert refusal is not None, code
        assert what in refusal.what and refusal.line in [line.strip() for line in code.splitlines()]


@pytest.mark.parametrize("code", ALLOWED_PYTHON)
def test_everyday_python_runs(code):
    assert find_forbidden(code, DEFAULT_FORBIDDEN_COMMANDS, "python") is None


def test_the_tables_are_big_enough():
    assert len(REFUSED_SHELL) + len(REFUSED_PYTHON) >= 40 and len(ALLOWED_SHELL) + len(ALLOWED_PYTHON) >= 20


def test_the_refusal_names_the_line_and_what_it_does_in_one_paragraph():
    refusal = find_forbidden("echo a\nsudo rm -fr / # tidy", DEFAULT_FORBIDDEN_COMMANDS, "shell")
    message = refusal.message()
    assert "`sudo rm -fr / # tidy`" in message and "removes / (the whole machine)" in message
    assert "computer.forbidden_commands" in message and "nothing of this block ran" in message
    assert message.count("\n") == 1 and message.endswith("\n")


def test_the_line_points_into_the_code_around_inner_code():
    code = "import os\nprint(1)\nos.system(\"bash -c 'echo; rm -rf /'\")"
    assert find_forbidden(code, [], "python").line == "os.system(\"bash -c 'echo; rm -rf /'\")"


def test_user_entries_match_after_normalisation():
    entries = ["rm -rf /data", "drop table"]
    for code in ['sudo /bin/rm -fr "/data"  # x', "echo x; rm -r -f -v /data/", "bash -c 'rm -Rf /data'"]:
        refusal = find_forbidden(code, entries, "shell")
        assert refusal is not None and "`rm -rf /data`" in refusal.what, code
    assert find_forbidden("import os\nos.system('rm -fr /data')", entries, "python") is not None
    assert find_forbidden("  drop   table  ", entries, "sql") is not None
    # other operands, or fewer options than the entry: not the entry's command
    for code in ["rm -rf /data/keep", "rm -r /data", "rm -rf /data2"]:
        assert find_forbidden(code, entries, "shell") is None, code


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("rm -f/~*$(){}'\"`\\;&|<>\n#=:!%.cabshpy0")), max_size=80),
       st.sampled_from(["shell", "python", "javascript"]))
def test_any_text_is_checked_without_an_exception(code, language):
    find_forbidden(code, DEFAULT_FORBIDDEN_COMMANDS, language, PROJECT)


# -- the computer: a refused block does not run at all ----------------------------------------------------
# Each refused command below would fail harmlessly if the check ever let it through.

def test_a_refused_shell_block_does_not_run_at_all(computer, scratch):
    marker = scratch / "first-line-ran"
    for refused in (f"rm -rf --no-preserve-root {scratch}/nothing-here", "mkfs.ext4 /dev/oi-local-no-such-device",
                    "bash -c 'rm -fr /'"):
        chunks = list(computer.run("shell", f"touch {marker}\n{refused}\necho after", stream=True))
        out = text(chunks)
        assert out.startswith("This code was not run") and f"`{refused}`" in out and out.count("\n") == 1
        assert not marker.exists()
        assert chunks[-1] == {"role": "computer", "type": "console", "format": "active_line", "content": None}
    assert text(computer.run("shell", f"touch {marker} && echo ran")) == "ran\n"  # the shell itself is fine


def test_a_refused_python_block_does_not_run_at_all(computer, scratch):
    marker = scratch / "first-line-ran"
    for refused in ("os.rmdir('/')", "!mkfs.ext4 /dev/oi-local-no-such-device"):
        out = text(computer.run("python", f"import os\nopen({str(marker)!r}, 'w').close()\n{refused}"))
        assert "was not run" in out and f"`{refused}`" in out
        assert not marker.exists()
    assert text(computer.run("python", "print('kernel fine')")) == "kernel fine\n"


def test_everyday_commands_still_run(computer, scratch):
    (scratch / "build").mkdir()
    (scratch / "x").mkdir()
    out = text(computer.run("shell", f"cd {scratch}\nrm -rf ./build\nrm -rf {scratch}/x\nls / > /dev/null\n"
                                     'echo "rm -rf /"\ngrep -r oi-local-nothing-matches /etc >/dev/null; echo grep-ran'))
    assert out == "rm -rf /\ngrep-ran\n"
    assert not (scratch / "build").exists() and not (scratch / "x").exists()


def test_the_shell_s_own_folder_counts(computer, scratch):
    # Only the check is asked here: `rm -rf *` is never run.
    computer.run("shell", "cd /")
    assert "everything in /" in computer.refusal("shell", "rm -rf *")
    computer.run("shell", f"cd {scratch}")
    assert computer.refusal("shell", "rm -rf *") is None


def test_a_custom_language_only_gets_the_user_list():
    class Echo:
        name = "echo"

        def run(self, code):
            yield {"type": "console", "format": "output", "content": code}

        def stop(self):
            pass

        def terminate(self):
            pass

    echo = Computer(languages=[Echo], forbidden_commands=["drop table"])
    assert text(echo.run("echo", "rm -rf /")) == "rm -rf /"  # not a shell: the text is only printed
    assert "forbidden_commands" in text(echo.run("echo", "drop table"))
