"""bindv6only.py PROBE PORT: in a fresh network namespace (run it under `unshare --map-root-user
--net`), sets net.ipv6.bindv6only to 1, as a hostNetwork pod inherits it from such a node,
starts the probe on [::]:PORT and calls it over IPv4. Prints two words: whether a plain IPv6
socket answers IPv4 there (the control: `refused`), and the probe's /livez status over IPv4
(`200`, or `refused`)."""
import fcntl
import socket
import struct
import subprocess
import sys
import time
import urllib.request

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

probe, port = sys.argv[1], int(sys.argv[2])
# A new network namespace has its loopback down.
s = socket.socket()
flags = struct.unpack("16sh", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sh", b"lo", 0)))[1]
fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))
with open("/proc/sys/net/ipv6/bindv6only", "w") as f:
    f.write("1")

plain = socket.socket(socket.AF_INET6)
plain.bind(("::", 0))
plain.listen()
try:
    socket.create_connection(("127.0.0.1", plain.getsockname()[1]), timeout=1)
    control = "answered"
except OSError:
    control = "refused"

child = subprocess.Popen([probe, f"--listen=[::]:{port}", "--hostname=x"],
                         env={"REDIS_URL": "redis://127.0.0.1:1/0"}, stderr=subprocess.DEVNULL)
try:
    result = "refused"
    for _ in range(100):
        try:
            result = str(urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2).status)
            break
        except OSError:
            time.sleep(0.1)
finally:
    child.kill()
    child.wait()
print(control, result)
