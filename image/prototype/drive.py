#!/usr/bin/python3
"""Drive qemu's serial console (stdio): wait for login, run commands, power off.
usage: drive.py LOGFILE qemu-cmd...   Exit 0 on success."""
import sys, time, pexpect

log, cmd = sys.argv[1], sys.argv[2:]
PROMPT = r"root@imgproto:~# "
t0 = time.monotonic()
def t(): return time.monotonic() - t0
marks = {}

with open(log, "w") as lf:
    p = pexpect.spawn(cmd[0], cmd[1:], encoding="utf-8", codec_errors="replace",
                      timeout=120, logfile=lf, dimensions=(50, 200))
    try:
        p.expect("Linux version");            marks["kernel starts"] = t()
        p.expect(r"Run /init|Freeing unused kernel image"); marks["initramfs"] = t()
        p.expect(r"systemd\[1\]: |Welcome to");  marks["systemd (pid1)"] = t()
        p.expect(r"login:");                  marks["login prompt"] = t()
        p.expect(PROMPT);                     marks["autologin shell"] = t()
        p.sendline("stty cols 200; export SYSTEMD_PAGER=cat SYSTEMD_COLORS=0; "
                   "systemctl is-system-running --wait; echo MARK-RUNNING")
        p.expect("MARK-RUNNING\r\n"); p.expect(PROMPT); marks["is-system-running returned"] = t()
        for c in ["uname -a", "cat /proc/cmdline", "findmnt -n -o SOURCE,TARGET,FSTYPE,OPTIONS / /efi /data",
                  "ls -l /dev/disk/by-partlabel/", "ls /efi/loader/entries/",
                  "systemctl --no-legend --failed", "systemctl status --no-pager -n0 systemd-bless-boot.service | head -4",
                  "bootctl status --no-pager 2>&1 | sed -n '1,25p'",
                  "systemd-analyze 2>&1 | head -2", "df -h / /data /efi"]:
            p.sendline(c + "; echo MARK-DONE")
            p.expect("MARK-DONE\r\n"); p.expect(PROMPT)
            print("$ " + c); print(p.before.replace("\r", "").rstrip())
        p.sendline("systemctl poweroff")
        p.expect(pexpect.EOF, timeout=60);     marks["qemu exited"] = t()
    except (pexpect.TIMEOUT, pexpect.EOF) as e:
        print("FAILED waiting; last output:\n" + (p.before or "")[-2000:], file=sys.stderr)
        p.terminate(force=True); sys.exit(1)
print("\n--- timings (s since qemu start) ---")
for k, v in marks.items(): print(f"{v:7.2f}  {k}")
