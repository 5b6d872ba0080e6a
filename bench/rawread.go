package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
)

// rawReadArg runs the bench binary as the raw-read child:
// `bench -internal-raw-read JOBS DIR` prints the bytes it read.
const rawReadArg = "-internal-raw-read"

// rawUnit is how much of one file a goroutine reads at a time (in 1 MiB
// reads): large files are spread over the goroutines, as pgtwopass spreads
// the chunks of a relation segment.
const rawUnit = 16 << 20

func rawReadMain(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: bench "+rawReadArg+" JOBS DIR")
		return 2
	}
	jobs, err := strconv.Atoi(args[0])
	if err != nil || jobs < 1 {
		fmt.Fprintln(os.Stderr, "bad JOBS")
		return 2
	}
	n, err := rawRead(args[1], jobs)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(n)
	return 0
}

// rawRead reads every regular file of dir that a copy includes with jobs
// goroutines, in 1 MiB reads, and discards the data: the physical limit of a
// pass that reads every source block.
func rawRead(dir string, jobs int) (int64, error) {
	type unit struct {
		path     string
		off, len int64
	}
	var units []unit
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != "." && excluded(filepath.ToSlash(rel)) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		size := fi.Size()
		if size == 0 {
			units = append(units, unit{p, 0, 0})
		}
		for off := int64(0); off < size; off += rawUnit {
			units = append(units, unit{p, off, min(rawUnit, size-off)})
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	ch := make(chan unit)
	var total atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs error
	for range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for u := range ch {
				f, err := os.Open(u.path)
				if err != nil {
					mu.Lock()
					errs = errors.Join(errs, err)
					mu.Unlock()
					continue
				}
				for off := u.off; off < u.off+u.len; {
					n, err := f.ReadAt(buf[:min(int64(len(buf)), u.off+u.len-off)], off)
					off += int64(n)
					total.Add(int64(n))
					if err != nil {
						if !errors.Is(err, io.EOF) {
							mu.Lock()
							errs = errors.Join(errs, err)
							mu.Unlock()
						}
						break
					}
				}
				f.Close()
			}
		}()
	}
	for _, u := range units {
		ch <- u
	}
	close(ch)
	wg.Wait()
	return total.Load(), errs
}
