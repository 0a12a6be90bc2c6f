package archive

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression is chosen by the file name: ".gz" is gzip, ".zst" zstd, anything else
// plain NDJSON. klauspost/compress is used for both: its gzip is a drop-in for the
// standard library's and several times faster, which matters at hundreds of thousands
// of events per second.

// Create creates (truncating) the archive file path, compressed as its extension says.
// Closing the result flushes the compressor, syncs the file to disk and closes it.
func Create(path string) (io.WriteCloser, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (io.WriteCloser, error) {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	// Both compressors run at their fastest useful level: an export reads, encodes and
	// compresses on two cores, and compression was its largest cost after reading. On
	// the bench's history (1.44 KB of NDJSON per event), per event:
	//
	//	zstd default   42 B, 1.1 µs of CPU compressing alone
	//	zstd fastest   54 B, 1.0 µs alone; a whole export costs 0.8–1.0 µs less than
	//	               with default when other processes share the caches (its tables
	//	               are smaller)
	//	gzip default  193 B, 4.4 µs
	//	gzip level 2  205 B, 2.4 µs (level 1: 218 B, as fast)
	switch {
	case strings.HasSuffix(path, ".gz"):
		zw, err := gzip.NewWriterLevel(f, 2)
		if err != nil {
			return fail(err)
		}
		return &fileWriter{w: zw, z: zw, f: f}, nil
	case strings.HasSuffix(path, ".zst"):
		// One encoder, in the writing goroutine: zstd's background block encoding
		// cost a quarter more CPU, and an export has other work for the second core.
		zw, err := zstd.NewWriter(f, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return fail(err)
		}
		return &fileWriter{w: zw, z: zw, f: f}, nil
	}
	return &fileWriter{w: f, f: f}, nil
}

type fileWriter struct {
	w io.Writer
	z io.Closer // the compressor, if any
	f *os.File
}

func (w *fileWriter) Write(b []byte) (int, error) { return w.w.Write(b) }

func (w *fileWriter) Close() error {
	var errs []error
	if w.z != nil {
		errs = append(errs, w.z.Close())
	}
	errs = append(errs, w.f.Sync(), w.f.Close())
	return errors.Join(errs...)
}

// Open opens the archive file path, decompressing as its extension says.
func Open(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasSuffix(path, ".gz"):
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: not gzip: %w", path, err)
		}
		return &fileReader{r: zr, close: func() error { zr.Close(); return f.Close() }}, nil
	case strings.HasSuffix(path, ".zst"):
		// A window limit keeps a hostile file from claiming gigabytes of memory. One
		// decoder in the reading goroutine: background decoding cost 0.5 µs of CPU per
		// line of the bench's archive, in-line 0.3 µs, and an import has other work
		// for the second core.
		zr, err := zstd.NewReader(f, zstd.WithDecoderMaxWindow(128<<20), zstd.WithDecoderConcurrency(1))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return &fileReader{r: zr, close: func() error { zr.Close(); return f.Close() }}, nil
	}
	return f, nil
}

type fileReader struct {
	r     io.Reader
	close func() error
}

func (r *fileReader) Read(b []byte) (int, error) { return r.r.Read(b) }
func (r *fileReader) Close() error               { return r.close() }
