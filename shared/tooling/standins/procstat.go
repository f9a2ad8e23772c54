package standins

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ProcessUsage is what /proc says about one stand-in process.
type ProcessUsage struct {
	PID int `json:"pid"`
	// CPUSeconds is user plus system time (all threads), over the run when
	// it is a difference of two readings.
	CPUSeconds float64 `json:"cpu_seconds"`
	// PeakRSSMiB is the process's peak resident set (VmHWM) since it started,
	// which for a reused emulator includes earlier runs.
	PeakRSSMiB float64 `json:"peak_rss_mib"`
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// ListenerPID returns the id of the process that listens on addr's TCP port
// (host:port, on this machine), found through /proc/net/tcp{,6} and the
// processes' open sockets. It finds only processes this user may inspect.
func ListenerPID(addr string) (int, error) {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("listener of %s: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return 0, fmt.Errorf("listener of %s: %w", addr, err)
	}
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		listening(f, port, inodes)
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("listener of %s: no listening socket in /proc/net/tcp", addr)
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		link, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
			pid, err := strconv.Atoi(strings.Split(fd, "/")[2])
			if err == nil {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("listener of %s: no process of ours holds its socket", addr)
}

// listening adds to inodes the sockets of file (/proc/net/tcp format) that
// listen on port.
func listening(file string, port int, inodes map[string]bool) {
	f, err := os.Open(file)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "0A" { // 0A: LISTEN
			continue
		}
		i := strings.LastIndex(fields[1], ":")
		p, err := strconv.ParseUint(fields[1][i+1:], 16, 32)
		if err == nil && int(p) == port {
			inodes[fields[9]] = true
		}
	}
}

// ReadUsage reads a process's CPU time and peak RSS from /proc.
func ReadUsage(pid int) (ProcessUsage, error) {
	u := ProcessUsage{PID: pid}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, fmt.Errorf("usage of process %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces; fields after its ")" are
	// state (3), ..., utime (14), stime (15).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return u, fmt.Errorf("usage of process %d: unexpected /proc stat %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return u, fmt.Errorf("usage of process %d: short /proc stat", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return u, fmt.Errorf("usage of process %d: %w", pid, err)
	}
	u.CPUSeconds = float64(ut+st) / clockTicks
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
				u.PeakRSSMiB = kb / 1024
			}
		}
	}
	return u, nil
}
