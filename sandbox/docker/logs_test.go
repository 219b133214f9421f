package docker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// frame builds one frame of Docker's multiplexed stream.
func frame(stream byte, payload string) []byte {
	b := make([]byte, frameHeader+len(payload))
	b[0] = stream
	binary.BigEndian.PutUint32(b[4:], uint32(len(payload)))
	copy(b[frameHeader:], payload)
	return b
}

func stream(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

// chunkReader returns its data n bytes at a time, so frames and headers
// are split across reads.
type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(r.n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func TestDemux(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 4<<10) // 64 KiB: more than the initial buffer
	data := stream(
		frame(1, "testapp starting\n"),
		frame(2, "testapp stderr: pid 1\n"),
		frame(1, ""),
		frame(1, big),
		frame(2, "second\n"),
		frame(1, "last\n"),
	)
	wantOut := "testapp starting\n" + big + "last\n"
	wantErr := "testapp stderr: pid 1\nsecond\n"
	readers := map[string]func() io.Reader{
		"whole":       func() io.Reader { return bytes.NewReader(data) },
		"one byte":    func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) },
		"split in 5s": func() io.Reader { return &chunkReader{data: data, n: 5} },
		"split in 11": func() io.Reader { return &chunkReader{data: data, n: 11} },
		"half reads":  func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) },
	}
	for name, r := range readers {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if err := demux(r(), &out, &errb, nil); err != nil {
				t.Fatalf("demux: %v", err)
			}
			if out.String() != wantOut {
				t.Errorf("stdout = %d bytes %.40q…, want %d bytes", out.Len(), out.String(), len(wantOut))
			}
			if errb.String() != wantErr {
				t.Errorf("stderr = %q, want %q", errb.String(), wantErr)
			}
		})
	}

	t.Run("stderr into stdout when nil", func(t *testing.T) {
		var out bytes.Buffer
		if err := demux(bytes.NewReader(stream(frame(1, "a\n"), frame(2, "b\n"), frame(1, "c\n"))), &out, nil, nil); err != nil {
			t.Fatal(err)
		}
		if out.String() != "a\nb\nc\n" {
			t.Errorf("merged = %q, want a b c in order", out.String())
		}
	})

	t.Run("frame callback sees streams", func(t *testing.T) {
		var got []string
		err := demux(&chunkReader{data: data, n: 3}, nil, nil, func(s byte, p []byte) error {
			if len(p) < 100 {
				got = append(got, string('0'+s)+":"+string(p))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"1:testapp starting\n", "2:testapp stderr: pid 1\n", "1:", "2:second\n", "1:last\n"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("frames = %q, want %q", got, want)
		}
	})

	t.Run("callback error stops", func(t *testing.T) {
		boom := errors.New("disk full")
		n := 0
		err := demux(bytes.NewReader(data), nil, nil, func(byte, []byte) error { n++; return boom })
		if !errors.Is(err, boom) || n != 1 {
			t.Errorf("err %v after %d frames, want the callback's error after 1", err, n)
		}
	})

	t.Run("empty stream", func(t *testing.T) {
		var out bytes.Buffer
		if err := demux(bytes.NewReader(nil), &out, &out, nil); err != nil || out.Len() != 0 {
			t.Errorf("demux of nothing = %v, %q", err, out.String())
		}
	})

	t.Run("truncated header", func(t *testing.T) {
		var out bytes.Buffer
		b := stream(frame(1, "ok\n"), frame(1, "x")[:3])
		if err := demux(bytes.NewReader(b), &out, &out, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("err = %v, want unexpected EOF", err)
		}
		if out.String() != "ok\n" {
			t.Errorf("out = %q, want the whole frames before the cut", out.String())
		}
	})

	t.Run("truncated payload", func(t *testing.T) {
		var out bytes.Buffer
		b := frame(1, "0123456789")[:frameHeader+4]
		if err := demux(bytes.NewReader(b), &out, &out, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("err = %v, want unexpected EOF", err)
		}
	})

	t.Run("frame over the size limit", func(t *testing.T) {
		hdr := make([]byte, frameHeader)
		hdr[0] = 1
		binary.BigEndian.PutUint32(hdr[4:], 1<<24+1)
		var out bytes.Buffer
		// The payload is not there: the header alone must be refused,
		// before any 16 MiB buffer is allocated or read.
		err := demux(bytes.NewReader(stream(frame(1, "before\n"), hdr)), &out, &out, nil)
		if err == nil || !strings.Contains(err.Error(), "stream corrupt") || !strings.Contains(err.Error(), "16777217") {
			t.Errorf("err = %v, want a corrupt stream error naming the size", err)
		}
		if out.String() != "before\n" {
			t.Errorf("out = %q", out.String())
		}
	})

	t.Run("writer error", func(t *testing.T) {
		boom := errors.New("closed")
		err := demux(bytes.NewReader(data), failWriter{boom}, io.Discard, nil)
		if !errors.Is(err, boom) {
			t.Errorf("err = %v, want the writer's", err)
		}
	})
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestSplitTimestamp(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		wantTS string // RFC 3339, "" for none
		rest   string
	}{
		{"docker line", "2026-11-27T05:03:59.123456789Z testapp starting: listen=:8080\n", "2026-11-27T05:03:59.123456789Z", "testapp starting: listen=:8080\n"},
		{"whole seconds", "2026-11-27T05:03:59Z x\n", "2026-11-27T05:03:59Z", "x\n"},
		{"offset", "2026-11-27T06:03:59.5+01:00 x", "2026-11-27T05:03:59.5Z", "x"},
		{"empty message", "2026-11-27T05:03:59.1Z ", "2026-11-27T05:03:59.1Z", ""},
		{"spaces kept in the message", "2026-11-27T05:03:59.1Z  two  spaces ", "2026-11-27T05:03:59.1Z", " two  spaces "},
		{"no timestamp", "hello world\n", "", "hello world\n"},
		{"no space", "2026-11-27T05:03:59Z", "", "2026-11-27T05:03:59Z"},
		{"leading space", " 2026-11-27T05:03:59Z x", "", " 2026-11-27T05:03:59Z x"},
		{"long first word", strings.Repeat("a", 50) + " x", "", strings.Repeat("a", 50) + " x"},
		{"empty", "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts, rest := splitTimestamp([]byte(tc.in))
			if string(rest) != tc.rest {
				t.Errorf("rest = %q, want %q", rest, tc.rest)
			}
			if tc.wantTS == "" {
				if !ts.IsZero() {
					t.Errorf("timestamp = %v, want none", ts)
				}
				return
			}
			want, err := time.Parse(time.RFC3339Nano, tc.wantTS)
			if err != nil {
				t.Fatal(err)
			}
			if !ts.Equal(want) {
				t.Errorf("timestamp = %v, want %v", ts, want)
			}
		})
	}
}
