package standins

import (
	"net"
	"os"
	"testing"
)

func TestListenerPIDFindsThisProcess(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pid, err := ListenerPID(ln.Addr().String())
	if err != nil {
		t.Skipf("/proc not readable here: %v", err)
	}
	if pid != os.Getpid() {
		t.Errorf("ListenerPID = %d, want this process %d", pid, os.Getpid())
	}
	u, err := ReadUsage(pid)
	if err != nil {
		t.Fatal(err)
	}
	if u.PID != pid || u.CPUSeconds < 0 || u.PeakRSSMiB <= 0 {
		t.Errorf("usage %+v: want this pid, CPU >= 0 and a peak RSS", u)
	}
}

func TestListenerPIDNoListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if pid, err := ListenerPID(addr); err == nil {
		t.Errorf("ListenerPID of a closed port = %d, want an error", pid)
	}
}
