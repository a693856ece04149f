package runtimetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Image is the offline test image: a static busybox with applet symlinks.
const (
	ImageName = "ebpfnet-test/busybox:latest"           // as docker names it
	ImageRef  = "docker.io/ebpfnet-test/busybox:latest" // as containerd names it
)

// BusyboxApplets are the commands the image has as symlinks to busybox.
var BusyboxApplets = []string{
	"sh", "ash", "nc", "httpd", "wget", "ip", "ifconfig", "route", "ping", "sleep", "cat", "echo",
	"nslookup", "ls", "hostname", "env", "ps", "kill", "mkdir", "rm", "grep", "sed", "awk",
	"head", "tail", "true", "false", "id", "date", "netstat", "udhcpc", "arp", "printf", "seq", "timeout",
}

var (
	imageOnce  sync.Once
	imageBytes []byte
	imageErr   error
)

// ImageArchive writes the test image into a file of the test's temp dir
// and returns its path. The archive is one that both `docker load`
// (docker-archive: manifest.json) and `ctr image import` (OCI image
// layout: oci-layout, index.json) accept: one gzip layer holding
// /bin/busybox and its applet links, made with the standard library (no
// daemon needed). Built once per test binary, deterministic (same bytes,
// same image ID every time).
func ImageArchive(t testing.TB) string {
	t.Helper()
	imageOnce.Do(func() { imageBytes, imageErr = ImageArchiveBytes(BusyboxBin) })
	if imageErr != nil {
		t.Fatalf("build test image: %v", imageErr)
	}
	p := filepath.Join(t.TempDir(), "busybox-image.tar")
	if err := os.WriteFile(p, imageBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var epoch = time.Unix(0, 0).UTC()

// RootfsTar returns an uncompressed tar of the image's root file system.
func RootfsTar(busybox string) ([]byte, error) {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("read %s (install busybox-static): %w", busybox, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := func(h *tar.Header) error {
		h.ModTime, h.Format = epoch, tar.FormatPAX
		return tw.WriteHeader(h)
	}
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "tmp", "root", "var", "var/www", "run"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := hdr(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode}); err != nil {
			return nil, err
		}
	}
	if err := hdr(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb))}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bb); err != nil {
		return nil, err
	}
	for _, a := range BusyboxApplets {
		if err := hdr(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}); err != nil {
			return nil, err
		}
	}
	files := map[string]string{
		"etc/passwd":         "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"etc/group":          "root:x:0:\nnogroup:x:65534:\n",
		"var/www/index.html": "ebpfnet-test\n",
	}
	for _, name := range []string{"etc/group", "etc/passwd", "var/www/index.html"} {
		body := files[name]
		if err := hdr(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			return nil, err
		}
		tw.Write([]byte(body))
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// WriteImageArchive writes the test image archive (see ImageArchive) to path.
func WriteImageArchive(path, busybox string) error {
	b, err := ImageArchiveBytes(busybox)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// ImageArchiveBytes returns the test image archive (see ImageArchive).
func ImageArchiveBytes(busybox string) ([]byte, error) {
	rootfs, err := RootfsTar(busybox)
	if err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.ModTime = epoch
	zw.Write(rootfs)
	zw.Close()
	layer := gz.Bytes()

	config, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config": map[string]any{
			"Env":        []string{"PATH=/bin"},
			"Cmd":        []string{"sh"},
			"WorkingDir": "/",
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{digestOf(rootfs)}},
		"history": []map[string]string{{"created": epoch.Format(time.RFC3339), "created_by": "ebpfnet internal/testing/runtimetest"}},
	})
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: digestOf(config), Size: int64(len(config))},
		"layers":        []descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: digestOf(layer), Size: int64(len(layer))}},
	})
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []descriptor{{
			MediaType: "application/vnd.oci.image.manifest.v1+json",
			Digest:    digestOf(manifest), Size: int64(len(manifest)),
			Platform: &platform{Architecture: runtime.GOARCH, OS: "linux"},
			Annotations: map[string]string{
				"io.containerd.image.name":          ImageRef,
				"org.opencontainers.image.ref.name": "latest",
			},
		}},
	})
	blob := func(b []byte) string { return "blobs/sha256/" + digestOf(b)[len("sha256:"):] }
	dockerManifest, _ := json.Marshal([]map[string]any{{
		"Config":   blob(config),
		"RepoTags": []string{ImageName},
		"Layers":   []string{blob(layer)},
	}})

	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	add := func(name string, body []byte) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: epoch})
		tw.Write(body)
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch})
	}
	add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	add(blob(layer), layer)
	add(blob(config), config)
	add(blob(manifest), manifest)
	add("index.json", index)
	add("manifest.json", dockerManifest)
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
