"""Prints TCP_NODELAY of each TCP socket of a process that is connected
to a port: "PORT VALUE" per line.  The sockets are borrowed with
pidfd_getfd(2) (Linux 5.6+, needs ptrace rights over the process).

    python3 t/lib/sockopt.py PID PORT
"""
import ctypes
import os
import socket
import sys

SYS_pidfd_getfd = 438

pid, port = int(sys.argv[1]), int(sys.argv[2])
libc = ctypes.CDLL(None, use_errno=True)
pidfd = os.pidfd_open(pid)

for fd in os.listdir(f"/proc/{pid}/fd"):
    try:
        if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
            continue
    except OSError:
        continue
    dup = libc.syscall(SYS_pidfd_getfd, pidfd, int(fd), 0)
    if dup < 0:
        continue
    s = socket.socket(fileno=dup)
    try:
        if s.type == socket.SOCK_STREAM and s.family == socket.AF_INET \
                and s.getpeername()[1] == port:
            print(port, s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    except OSError:
        pass
    finally:
        s.detach()
        os.close(dup)
