package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// Entry is one json-file log line.
type Entry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// ReadLast returns the last n entries (all of them if n <= 0) across path,
// path.1 … path.(maxFiles-1), in chronological order. maxFiles <= 0 means
// DefaultMaxFiles. Missing rotated files are skipped; if none of the files
// exists the error wraps fs.ErrNotExist. A final line without newline that
// does not parse (a torn write) is ignored; any other malformed line is an
// error. It reads whole files and is not atomic with respect to a rotation
// happening while it runs.
func ReadLast(path string, maxFiles int, n int) ([]Entry, error) {
	if maxFiles <= 0 {
		maxFiles = DefaultMaxFiles
	}
	var chunks [][]Entry // newest file first
	total, found := 0, false
	for i := 0; i < maxFiles && (n <= 0 || total < n); i++ {
		name := rotated(path, i)
		data, err := os.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		found = true
		entries, err := parseEntries(name, data)
		if err != nil {
			return nil, err
		}
		if n > 0 && total+len(entries) > n {
			entries = entries[len(entries)-(n-total):]
		}
		chunks = append(chunks, entries)
		total += len(entries)
	}
	if !found {
		return nil, fmt.Errorf("logging: %s: %w", path, fs.ErrNotExist)
	}
	out := make([]Entry, 0, total)
	for i := len(chunks) - 1; i >= 0; i-- {
		out = append(out, chunks[i]...)
	}
	return out, nil
}

// parseEntries decodes the lines of one log file.
func parseEntries(name string, data []byte) ([]Entry, error) {
	var entries []Entry
	for lineNo := 1; len(data) > 0; lineNo++ {
		line, rest, complete := bytes.Cut(data, []byte{'\n'})
		data = rest
		if len(line) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil {
			if !complete {
				break // torn final write
			}
			return nil, fmt.Errorf("logging: %s:%d: %w", name, lineNo, err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}
