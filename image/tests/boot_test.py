#!/usr/bin/python3
"""The appliance image's boot test (issue 12): build the image, boot it under
qemu (OVMF, serial console) and drive it like an operator.

  1. First boot: the setup runs from an answers file on a COFFER-SETUP medium
     (network by DHCP, administrator with TOTP, two blank disks become a pool,
     a virtual tape library, no NTP); the test logs in with the enrolled TOTP
     secret, adds a profile and an asset, backs up /etc inside the VM, checks
     `status` and that the panel shows the address, installs the signed update
     0.2.0 from a COFFER-UPDATE medium and reboots.
  2. Second boot: slot B runs 0.2.0 and is blessed good once cofferd answers;
     the job from the first boot is still in the catalog (state lives on the
     data partition); a deliberately broken 0.3.0 (its cofferd exits at once)
     is installed into slot A with one try, and the appliance reboots.
  3. Third boot: slot A 0.3.0 never gets a healthy cofferd; the boot check
     gives up and reboots.
  4. Fourth boot: systemd-boot has sorted A last; slot B 0.2.0 runs again and
     `update status` shows A failed and rolled back. A fixed 0.3.1 goes into
     the failed slot A.
  5. Fifth boot: slot A runs 0.3.1, blessed good; a broken 0.4.0 goes into B.
  6. Sixth boot: slot B 0.4.0 fails its boot check and reboots.
  7. Seventh boot: back on A 0.3.1 (the rollback, the other way round), B
     failed; the first boot's backup is still in the catalog.

Needs root, qemu-system-x86_64, OVMF, mmdebstrap, mtools, dosfstools, e2fsprogs
(debugfs), fdisk, python3-pexpect, and the workspace's debug binaries (built
here with cargo). KVM is used when it can run the firmware; this machine's
/dev/kvm (a nested PVM hypervisor) stops in OVMF with an emulation failure,
so the test says so and boots under TCG instead. Without /dev/kvm at all it
is skipped, with the reason.

usage: boot_test.py [--work DIR] [--keep]     exit 0: passed (or skipped)
"""

import argparse
import base64
import hashlib
import hmac
import os
import re
import shutil
import struct
import subprocess
import sys
import time

import pexpect

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEY = os.path.join(ROOT, "tests/fixtures/update/test-only.key")
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
PASSWORD = "correct horse battery staple"
HOST = "vault-1"
PROMPT = f"coffer(admin@{HOST})> "
ANSWERS = f"""# The boot test's setup answers (docs/setup.md).
hostname = "{HOST}"
[network]
mode = "dhcp"
[time]
ntp = []
timezone = "UTC"
[admin]
user = "admin"
password = "{PASSWORD}"
[disks]
use_disks = ["auto"]
pool = "main"
[tape]
library = "virtual"
cartridges = 4
"""
BROKEN_COFFERD = "#!/bin/sh\necho 'cofferd 0.3.0: deliberately broken for the boot test' >&2\nexit 1\n"

T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", flush=True)


def fail(msg):
    print(f"boot test FAILED: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def run(*cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        fail(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def totp(secret, t):
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(t) // 30), hashlib.sha1).digest()
    o = mac[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1_000_000)


class Codes:
    """TOTP codes; each is accepted once, so a second one waits for the next window."""

    def __init__(self, secret):
        self.secret, self.used = secret, None

    def next(self):
        while int(time.time()) // 30 == self.used:
            time.sleep(1)
        self.used = int(time.time()) // 30
        return totp(self.secret, time.time())


def accel():
    """'kvm' if KVM runs OVMF here, else 'tcg' (with the reason); None: skip."""
    if not os.path.exists("/dev/kvm"):
        return None
    vars_ = "/tmp/coffer-boot-test-probe.fd"
    shutil.copy(OVMF_VARS, vars_)
    p = pexpect.spawn("qemu-system-x86_64", [
        "-accel", "kvm", "-machine", "q35", "-m", "256", "-nographic", "-no-reboot", "-net", "none",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
        "-drive", f"if=pflash,format=raw,unit=1,file={vars_}"], encoding="utf-8", codec_errors="replace", timeout=30)
    i = p.expect(["BdsDxe", "KVM internal error", pexpect.EOF, pexpect.TIMEOUT])
    seen = (p.before or "")[-300:]
    p.terminate(force=True)
    os.unlink(vars_)
    if i == 0:
        return "kvm"
    why = {1: "KVM stops OVMF with an internal (emulation) error",
           2: "qemu exited under KVM", 3: "OVMF printed nothing in 30 s under KVM"}[i]
    log(f"KVM is present but cannot run the firmware here ({why}; {seen.strip()[:120]!r}): booting under TCG")
    return "tcg"


class Vm:
    def __init__(self, work, accel_, disks, logname):
        self.work = work
        cmd = ["qemu-system-x86_64", "-machine", "q35", "-m", "2048", "-smp", "2", "-nographic", "-no-reboot",
               "-accel", "kvm" if accel_ == "kvm" else "tcg,thread=multi",
               "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
               "-drive", f"if=pflash,format=raw,unit=1,file={work}/vars.fd",
               "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"]
        for d in disks:
            cmd += ["-drive", f"file={d},format=raw,if=virtio"]
        self.logf = open(os.path.join(work, logname), "w")
        log(f"qemu: {logname}")
        self.p = pexpect.spawn(cmd[0], cmd[1:], encoding="utf-8", codec_errors="replace", timeout=300,
                               logfile=self.logf, dimensions=(60, 220), echo=False)

    def expect(self, pattern, timeout=300, what=None):
        try:
            self.p.expect(pattern, timeout=timeout)
        except (pexpect.TIMEOUT, pexpect.EOF) as e:
            tail = (self.p.before or "")[-3000:]
            fail(f"waiting for {what or pattern!r}: {type(e).__name__}; the console showed last:\n{tail}")
        return self.p.before

    def command(self, line, timeout=300):
        """Runs a shell command; returns what it printed."""
        self.p.sendline(line)
        # The shell's line editor echoes (and wraps at the serial console's 80
        # columns) the line, then turns bracketed paste off as it accepts it.
        self.expect(re.escape("\x1b[?2004l"), timeout=30, what=f"the shell accepting {line!r}")
        out = self.expect(re.escape(PROMPT), timeout=timeout, what=f"the prompt after {line!r}")
        return out.replace("\r", "")

    def login(self, codes):
        self.expect("login: ", what="the shell's login prompt")
        self.p.sendline("admin")
        self.expect("password: ")
        self.p.sendline(PASSWORD)
        self.expect("TOTP code: ")
        self.p.sendline(codes.next())
        self.expect(re.escape(PROMPT), what="the prompt after logging in")
        log("logged in as admin")

    def booted_slot(self):
        m = re.search(r"coffer\.slot=([ab])", self.text())
        return m.group(1) if m else None

    def text(self):
        if not self.logf.closed:
            self.logf.flush()
        with open(self.logf.name, errors="replace") as f:
            return f.read()

    def wait_exit(self, timeout, what):
        self.expect(pexpect.EOF, timeout=timeout, what=what)
        self.p.close()
        self.logf.close()

    def kill(self):
        self.p.terminate(force=True)
        self.logf.close()


def update_status(vm):
    return vm.command("update status")


def reboot(vm, codes):
    vm.p.sendline("system reboot")
    i = vm.p.expect(["TOTP code: ", "restarting", pexpect.EOF, pexpect.TIMEOUT], timeout=60)
    if i == 0:
        vm.p.sendline(codes.next())
    elif i > 1:
        fail("`system reboot` did not answer")
    vm.wait_exit(180, "the reboot (qemu exits: -no-reboot)")


def wait_good(vm, slot, version):
    """Polls `update status` until the running slot has been blessed."""
    for _ in range(60):
        st = update_status(vm)
        if re.search(rf"\b{slot}\s+{re.escape(version)}\s+good", st):
            break
        time.sleep(3)
    else:
        fail(f"slot {slot} was not blessed good:\n{st}")
    if f"running: slot {slot}, version {version}" not in st:
        fail(f"update status:\n{st}")


def broken_boot(work, acc, disks, logname, slot):
    """A boot of a slot whose cofferd never answers: the check reboots."""
    vm = Vm(work, acc, disks, logname)
    vm.expect(f"coffer.slot={slot}", timeout=120, what=f"slot {slot} booting")
    vm.expect("this slot is not healthy", timeout=300, what="the boot check's verdict")
    vm.wait_exit(400, "the boot check to give up and reboot")
    if "coffer-boot-check" not in vm.text():
        fail("the boot check's unit did not run on the tried boot")


def install(vm, codes, extra=""):
    vm.p.sendline(f"update install{extra}")
    outcomes = ["installed into slot", r"error: [^\r\n]*", "TOTP code: ", pexpect.TIMEOUT, pexpect.EOF]
    i = vm.p.expect(outcomes, timeout=900)
    if i == 2:
        vm.p.sendline(codes.next())
        i = vm.p.expect(outcomes[:2] + outcomes[3:], timeout=900)
    if i != 0:
        fail(f"`update install` did not install: {(vm.p.before or '')[-1500:]}{vm.p.after if i == 1 else ''}")
    out = vm.expect(re.escape(PROMPT), timeout=60)
    log("installed: " + ("installed into slot" + out).replace("\r", "").strip().splitlines()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.path.join(ROOT, "target/boot-test"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    if os.geteuid() != 0:
        fail("the boot test builds the image and needs root")
    acc = accel()
    if acc is None:
        print("boot test SKIPPED: /dev/kvm is absent on this machine (the test boots the image under KVM)")
        return
    work = a.work
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    out = os.path.join(work, "out")

    # The binaries the image carries, and the image: 0.1.0 (the disk image),
    # 0.2.0 (an update bundle of the same tree), 0.3.0 (broken on purpose).
    run("cargo", "build", "-q", "-p", "coffer", "-p", "cofferd", "-p", "coffer-image", cwd=ROOT)
    ci = os.path.join(ROOT, "target/debug/coffer-image")
    log("building the image 0.1.0")
    rec = run(ci, "build", "--out", out, "--key", KEY, "--version", "0.1.0")
    log("built: " + " ".join(rec.split()))
    run(ci, "build", "--out", out, "--key", KEY, "--version", "0.2.0", "--bundle-only")
    run(ci, "build", "--out", out, "--key", KEY, "--version", "0.3.1", "--bundle-only")
    log("built the update bundles 0.2.0 and 0.3.1")
    with open(os.path.join(work, "cofferd-broken"), "w") as f:
        f.write(BROKEN_COFFERD)

    def broken_bundle(version):
        """The 0.2.0 tree with a cofferd that exits at once, as `version`."""
        root = os.path.join(work, f"rootfs-{version}.ext4")
        shutil.copy(os.path.join(out, "rootfs-0.2.0.ext4"), root)
        vf = os.path.join(work, f"version-{version}")
        with open(vf, "w") as f:
            f.write(version + "\n")
        run("debugfs", "-w", "-f", "-", root, input=(
            "rm /usr/bin/cofferd\n"
            f"write {work}/cofferd-broken /usr/bin/cofferd\n"
            "set_inode_field /usr/bin/cofferd mode 0100755\n"
            "rm /usr/lib/coffer/version\n"
            f"write {vf} /usr/lib/coffer/version\n"))
        if "deliberately broken" not in run("debugfs", "-R", "cat /usr/bin/cofferd", root):
            fail("debugfs did not replace cofferd in the broken root")
        cub = os.path.join(work, f"broken-{version}.cub")
        run(ci, "bundle", "--key", KEY, "--version", version, "--out", cub,
            f"rootfs={root}", f"vmlinuz={out}/vmlinuz-0.2.0", f"initrd.img={out}/initrd-0.2.0.img")
        os.unlink(root)
        return cub

    broken3, broken4 = broken_bundle("0.3.0"), broken_bundle("0.4.0")
    log("built the broken update bundles 0.3.0 and 0.4.0")

    # The media and disks an operator would attach.
    boot = os.path.join(work, "boot.img")
    run("cp", "--sparse=always", os.path.join(out, "coffer-0.1.0.img"), boot)
    shutil.copy(OVMF_VARS, os.path.join(work, "vars.fd"))
    disks = [os.path.join(work, f"disk{i}.img") for i in (1, 2)]
    for d in disks:
        run("truncate", "-s", "2G", d)

    def medium(name, label, files, size):
        d = os.path.join(work, name + ".d")
        os.makedirs(d)
        for f in files:
            os.link(f, os.path.join(d, os.path.basename(f)))
        img = os.path.join(work, name + ".img")
        run("truncate", "-s", size, img)
        run("mkfs.ext4", "-q", "-L", label, "-d", d, img)
        return img

    ans = os.path.join(work, "coffer-setup.toml")
    with open(ans, "w") as f:
        f.write(ANSWERS)
    setup = medium("setup", "COFFER-SETUP", [ans], "16M")
    upd1 = medium("update-0.2.0", "COFFER-UPDATE", [os.path.join(out, "coffer-0.2.0.cub")], "1200M")
    upd2 = medium("update-0.3.0", "COFFER-UPDATE", [broken3], "1200M")
    upd3 = medium("update-0.3.1", "COFFER-UPDATE", [os.path.join(out, "coffer-0.3.1.cub")], "1200M")
    upd4 = medium("update-0.4.0", "COFFER-UPDATE", [broken4], "1200M")

    # Boot 1: first-boot setup, backup, status, panel, update to 0.2.0.
    vm = Vm(work, acc, [boot] + disks + [setup, upd1], "boot1.log")
    vm.expect("setup answers found on the COFFER-SETUP medium", what="the first-boot setup")
    log("the setup found its answers")
    report = vm.expect("setup complete.", timeout=300, what="the setup to complete")
    for needle in ["pool 'main'", "over 2 disks", "virtual library with 4 cartridges", "network: DHCP",
                   f"host name: {HOST}", "administrator 'admin' created"]:
        if needle not in report:
            fail(f"the setup report lacks {needle!r}:\n{report[-3000:]}")
    m = re.search(r"secret=([A-Z2-7]+)", report)
    if not m:
        fail("the setup did not show the TOTP enrollment")
    codes = Codes(m.group(1))
    log("setup complete: pool over 2 disks, virtual library, administrator enrolled")
    if vm.booted_slot() != "a":
        fail("the first boot is not slot A")
    vm.login(codes)
    st = vm.command("status")
    if "Coffer 0.1.0, slot a" not in st:
        fail(f"`status` does not show the image 0.1.0 on slot a:\n{st}")
    # The panel shows the address DHCP gave (qemu's user network: 10.0.2.15).
    for _ in range(30):
        panel = vm.command("panel show")
        if "10.0.2.15" in panel:
            break
        time.sleep(2)
    else:
        fail(f"the panel does not show the address 10.0.2.15:\n{panel}")
    log("status answers; the panel shows 10.0.2.15")
    vm.command("profile add daily --full 'Sun 01:00' --incremental '*-*-* 02:00'")
    o = vm.command("asset add etc --owner ops --criticality high --source /etc --rpo 1d --rto 4h --profile daily")
    if "asset 'etc' added" not in o:
        fail(f"asset add: {o}")
    o = vm.command("job run etc --watch", timeout=600)
    if "success" not in o:
        fail(f"the backup of /etc did not succeed:\n{o}")
    o = vm.command("job list")
    if not re.search(r"etc .*success", o):
        fail(f"job list does not show the backup:\n{o}")
    log("backed up /etc inside the VM")
    install(vm, codes)
    st = update_status(vm)
    if not re.search(r"\bb\s+0\.2\.0\s+being tried: 3 boots left", st):
        fail(f"update status after the install:\n{st}")
    reboot(vm, codes)

    # Boot 2: slot B, 0.2.0, blessed good; the broken 0.3.0 goes into A.
    vm = Vm(work, acc, [boot] + disks + [upd2], "boot2.log")
    vm.login(codes)
    if vm.booted_slot() != "b":
        fail("the second boot is not slot B")
    wait_good(vm, "b", "0.2.0")
    log("slot B runs 0.2.0 and is good")
    o = vm.command("job list")
    if not re.search(r"etc .*success", o):
        fail(f"the first boot's backup is gone from the catalog:\n{o}")
    install(vm, codes, " --tries 1")
    st = update_status(vm)
    if not re.search(r"\ba\s+0\.3\.0\s+being tried: 1 boot left", st):
        fail(f"update status after installing 0.3.0:\n{st}")
    reboot(vm, codes)

    # Boot 3: slot A 0.3.0 never gets a healthy cofferd; the boot check reboots.
    broken_boot(work, acc, [boot] + disks, "boot3.log", "a")
    log("slot A 0.3.0 failed its boot check; the appliance rebooted")

    # Boot 4: back on B 0.2.0, A shown failed; a fixed 0.3.1 goes into A.
    vm = Vm(work, acc, [boot] + disks + [upd3], "boot4.log")
    vm.login(codes)
    if vm.booted_slot() != "b":
        fail("the fourth boot is not slot B (no rollback)")
    st = update_status(vm)
    if "running: slot b, version 0.2.0" not in st or not re.search(r"\ba\s+0\.3\.0\s+FAILED after 1 boot\b", st):
        fail(f"update status after the rollback:\n{st}")
    o = vm.command("status")
    if "Coffer 0.2.0, slot b" not in o:
        fail(f"status after the rollback:\n{o}")
    log("rolled back: slot B 0.2.0 runs, slot A 0.3.0 FAILED")
    install(vm, codes)
    reboot(vm, codes)

    # Boot 5: slot A 0.3.1, blessed good; a broken 0.4.0 goes into B.
    vm = Vm(work, acc, [boot] + disks + [upd4], "boot5.log")
    vm.login(codes)
    if vm.booted_slot() != "a":
        fail("the fifth boot is not slot A")
    wait_good(vm, "a", "0.3.1")
    log("slot A runs the fixed 0.3.1 and is good")
    install(vm, codes, " --tries 1")
    reboot(vm, codes)

    # Boot 6: slot B 0.4.0 fails; boot 7: back on A 0.3.1.
    broken_boot(work, acc, [boot] + disks, "boot6.log", "b")
    log("slot B 0.4.0 failed its boot check; the appliance rebooted")
    vm = Vm(work, acc, [boot] + disks, "boot7.log")
    vm.login(codes)
    if vm.booted_slot() != "a":
        fail("the seventh boot is not slot A (no rollback)")
    st = update_status(vm)
    if "running: slot a, version 0.3.1" not in st or not re.search(r"\bb\s+0\.4\.0\s+FAILED after 1 boot\b", st):
        fail(f"update status after the second rollback:\n{st}")
    o = vm.command("job list")
    if not re.search(r"etc .*success", o):
        fail(f"the first boot's backup is gone from the catalog:\n{o}")
    log("rolled back to A: slot A 0.3.1 runs, slot B 0.4.0 FAILED, the catalog intact")
    vm.kill()
    print(f"boot test passed in {time.monotonic() - T0:.0f} s ({acc})")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
