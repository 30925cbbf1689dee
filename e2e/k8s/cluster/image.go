package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// ImportDockerImages saves images of the local Docker engine (`docker save`)
// and imports them into the node.
func (c *Cluster) ImportDockerImages(ctx context.Context, images ...string) error {
	if len(images) == 0 {
		return nil
	}
	tmp, err := os.MkdirTemp(c.layout.images, "docker-save-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	archive := filepath.Join(tmp, "images.tar")
	args := append([]string{"save", "-o", archive}, images...)
	if out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput(); err != nil { //nolint:gosec // G204: docker with image names the caller gave
		return fmt.Errorf("cluster: docker save %v: %w: %s", images, err, out)
	}
	return c.ImportImages(ctx, archive)
}

// ctr runs containerd's client against the cluster's containerd, in the
// namespace the CRI plugin (and so the kubelet) uses.
func (c *Cluster) ctr(ctx context.Context, args ...string) (string, error) {
	return ctrAt(ctx, c.layout.containerdSock, args...)
}

func ctrAt(ctx context.Context, socket string, args ...string) (string, error) {
	full := append([]string{"--address", socket, "--namespace", "k8s.io"}, args...)
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, ctrPath, full...) //nolint:gosec // G204: ctr with the harness's own arguments
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("ctr %v: %w: %s", args, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}
