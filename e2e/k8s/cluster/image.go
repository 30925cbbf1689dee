package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// binaryImage writes, as `docker save` would, an image FROM scratch that
// holds one static binary as /<name> and runs it as user (a number, so the
// kubelet can check runAsNonRoot). The cluster's own images (pause, CoreDNS)
// are made this way, from bin/k8s, so starting a cluster needs no Docker
// engine; tests import their images built with Docker by ImportDockerImages.
func binaryImage(archive, ref, binary, user string) error {
	data, err := os.ReadFile(binary) //nolint:gosec // G304: a program of bin/k8s
	if err != nil {
		return err
	}
	name := filepath.Base(binary)
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	epoch := time.Unix(0, 0)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerSum := sha256.Sum256(layer.Bytes())
	layerID := hex.EncodeToString(layerSum[:])
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      epoch.UTC().Format(time.RFC3339),
		"config":       map[string]any{"Entrypoint": []string{"/" + name}, "User": user},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + layerID}},
	})
	if err != nil {
		return err
	}
	configSum := sha256.Sum256(config)
	configName := hex.EncodeToString(configSum[:]) + ".json"
	manifest, err := json.Marshal([]map[string]any{{
		"Config":   configName,
		"RepoTags": []string{ref},
		"Layers":   []string{layerID + "/layer.tar"},
	}})
	if err != nil {
		return err
	}
	f, err := os.Create(archive) //nolint:gosec // G304: a file of the cluster's folder
	if err != nil {
		return err
	}
	out := tar.NewWriter(f)
	for _, e := range []struct {
		name string
		data []byte
	}{{configName, config}, {layerID + "/layer.tar", layer.Bytes()}, {"manifest.json", manifest}} {
		if err := out.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			f.Close()
			return err
		}
		if _, err := out.Write(e.data); err != nil {
			f.Close()
			return err
		}
	}
	if err := out.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ImportImages loads image archives (`docker save` output, or OCI archives)
// into the node's containerd, where the kubelet finds them: pods must use
// imagePullPolicy IfNotPresent or Never, since nothing can be pulled.
func (c *Cluster) ImportImages(ctx context.Context, archives ...string) error {
	for _, a := range archives {
		if _, err := c.ctr(ctx, "images", "import", a); err != nil {
			return fmt.Errorf("cluster: import image archive %s: %w", a, err)
		}
	}
	return nil
}

// ImportDockerImages streams images of the local Docker engine (`docker
// save`) into the node's containerd. No archive is written: the import needs
// no disk beyond containerd's own copy, and a failure names the disk space
// left, the usual cause on a small CI machine.
func (c *Cluster) ImportDockerImages(ctx context.Context, images ...string) error {
	if len(images) == 0 {
		return nil
	}
	save := exec.CommandContext(ctx, "docker", append([]string{"save"}, images...)...) //nolint:gosec // G204: docker with image names the caller gave
	var saveStderr bytes.Buffer
	save.Stderr = &saveStderr
	archive, err := save.StdoutPipe()
	if err != nil {
		return err
	}
	if err := save.Start(); err != nil {
		return fmt.Errorf("cluster: docker save: %w", err)
	}
	_, importErr := c.ctrFrom(ctx, archive, "images", "import", "-")
	// ctr is done reading: a docker save still writing (ctr failed) gets a
	// broken pipe instead of blocking Wait.
	_ = archive.Close()
	saveErr := save.Wait()
	if saveErr != nil {
		saveErr = fmt.Errorf("docker save: %w: %s", saveErr, bytes.TrimSpace(saveStderr.Bytes()))
	}
	if err := errors.Join(saveErr, importErr); err != nil {
		return fmt.Errorf("cluster: docker save %v | ctr images import -: %w (%s)", images, err, freeSpace(c.layout.root))
	}
	return nil
}

// freeSpace says how much disk is left under dir.
func freeSpace(dir string) string {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return fmt.Sprintf("free space of %s unknown: %v", dir, err)
	}
	return fmt.Sprintf("%d MiB free under %s", fs.Bavail*uint64(fs.Bsize)>>20, dir) //nolint:gosec // G115: a block size is positive
}

// ctr runs containerd's client against the cluster's containerd, in the
// namespace the CRI plugin (and so the kubelet) uses.
func (c *Cluster) ctr(ctx context.Context, args ...string) (string, error) {
	return c.ctrFrom(ctx, nil, args...)
}

// ctrFrom is ctr with its standard input read from stdin.
func (c *Cluster) ctrFrom(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	full := append([]string{"--address", c.layout.containerdSock, "--namespace", "k8s.io"}, args...)
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, ctrPath, full...) //nolint:gosec // G204: ctr with the harness's own arguments
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("ctr %v: %w: %s", args, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}
