package localinfra

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/mercato-dev/mercato/shared/wait"
)

// LogShipper copies the log lines that processes write to their log files
// into VictoriaLogs. It reads the files, never the processes' output
// itself: a process writes its log as it would without it, so a log store
// that is slow, down or gone can neither block nor slow it. Lines reach
// the store within about PollInterval; while the store fails, the shipper
// keeps its place in each file and sends the lines once it answers again.
//
// Each JSON line (every service's) is sent as it is, with the process's
// instance name added; any other line (a start-up error on stderr) as
// the message of a record naming the service and instance. The stream of a
// record is its service and instance; the message is its "msg", or else
// its "method" (a service's call log), and the time its "ts".
type LogShipper struct {
	url    string // the ingestion URL, query included
	client *http.Client
	// PollInterval is how often the files are read (500ms).
	PollInterval time.Duration
	// OnFailure, when set, is told of the first failure of a streak and of
	// the recovery that ends it (err nil).
	OnFailure func(err error)

	mu    sync.Mutex
	files []*shippedFile
}

type shippedFile struct {
	service, instance, path string
	offset                  int64
}

// maxShipBytes bounds what one file contributes to one request.
const maxShipBytes = 1 << 20

// NewLogShipper returns a shipper to the VictoriaLogs at baseURL (its
// URL()). Add files to it, then Run it.
func NewLogShipper(baseURL string) *LogShipper {
	q := url.Values{
		"_stream_fields": {"service,instance"},
		"_time_field":    {"ts"},
		"_msg_field":     {"msg,method"},
	}
	return &LogShipper{
		url:          baseURL + "/insert/jsonline?" + q.Encode(),
		client:       &http.Client{Timeout: 10 * time.Second},
		PollInterval: 500 * time.Millisecond,
	}
}

// Add ships the lines appended to path after offset from, as the logs of
// instance of service.
func (s *LogShipper) Add(service, instance, path string, from int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files = append(s.files, &shippedFile{service: service, instance: instance, path: path, offset: from})
}

// Run ships until ctx is done, then ships what is left once and returns.
func (s *LogShipper) Run(ctx context.Context) {
	failing := false
	report := func(err error) {
		if (err != nil) != failing && s.OnFailure != nil {
			s.OnFailure(err)
		}
		failing = err != nil
	}
	wait.Every(ctx, s.PollInterval, func() { report(s.Ship(ctx)) })
	final, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.Ship(final)
}

// Ship sends every file's complete lines that have not been sent yet. A
// file whose lines the store refused keeps its place, to be sent again.
func (s *LogShipper) Ship(ctx context.Context) error {
	s.mu.Lock()
	files := append([]*shippedFile(nil), s.files...)
	s.mu.Unlock()
	var firstErr error
	for _, f := range files {
		for {
			n, err := s.shipFile(ctx, f)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if err != nil || n < maxShipBytes/2 {
				break // failed, or caught up
			}
		}
	}
	return firstErr
}

// shipFile sends the complete lines of f after its offset (at most
// maxShipBytes) and returns how many bytes they took.
func (s *LogShipper) shipFile(ctx context.Context, f *shippedFile) (int, error) {
	chunk, err := readFrom(f.path, &f.offset)
	if err != nil || len(chunk) == 0 {
		return 0, err
	}
	end := bytes.LastIndexByte(chunk, '\n')
	if end < 0 {
		return 0, nil // a line still being written
	}
	chunk = chunk[:end+1]
	var body bytes.Buffer
	for line := range bytes.Lines(chunk) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			body.Write(f.record(line))
			body.WriteByte('\n')
		}
	}
	if body.Len() > 0 {
		if err := s.post(ctx, body.Bytes()); err != nil {
			return 0, fmt.Errorf("localinfra: shipping %s to VictoriaLogs: %w", f.path, err)
		}
	}
	f.offset += int64(len(chunk))
	return len(chunk), nil
}

// readFrom reads up to maxShipBytes of path from *offset, starting over
// when the file shrank (truncated, or made anew).
func readFrom(path string, offset *int64) ([]byte, error) {
	fh, err := os.Open(path) //nolint:gosec // G304: a log file of a process we started
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < *offset {
		*offset = 0
	}
	return io.ReadAll(io.NewSectionReader(fh, *offset, min(st.Size()-*offset, maxShipBytes)))
}

// record is line as VictoriaLogs should store it.
func (f *shippedFile) record(line []byte) []byte {
	var fields map[string]json.RawMessage
	if json.Unmarshal(line, &fields) != nil || fields == nil {
		fields = map[string]json.RawMessage{"msg": mustJSON(string(line)), "service": mustJSON(f.service)}
	}
	if _, ok := fields["service"]; !ok {
		fields["service"] = mustJSON(f.service)
	}
	fields["instance"] = mustJSON(f.instance)
	b, _ := json.Marshal(fields) // raw messages that parsed, and strings
	return b
}

func mustJSON(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// post sends one batch of JSON lines. VictoriaLogs stores nothing, while
// answering 200, unless the body is declared application/stream+json.
func (s *LogShipper) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/stream+json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
