// kubehooks-csi-driver: a TEST FIXTURE of the kubehooks.backup local cluster, standing in for a cloud
// CSI driver. Not for real data.
//
// Volumes are loop-mounted ext4 files under --state-dir/volumes (never a device of the machine), staged
// with `mount -o loop` and published with a bind mount. CreateSnapshot copies the volume's file to
// --state-dir/snapshots: the copy is consistent when the filesystem is frozen meanwhile (what a backup's
// pre hook does), crash-consistent at best otherwise. CreateVolume with a snapshot source copies the
// snapshot's file back. The driver registers itself with the kubelet (the pluginregistration v1 service
// on a socket in the kubelet's plugin registry), which node-driver-registrar does for real drivers.
// One process serves Identity, Controller and Node on two sockets: one for the sidecars
// (--controller-socket) and one for the kubelet (--node-socket).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	registration "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

const (
	mib         = int64(1) << 20
	minSize     = 16 * mib
	defaultSize = 64 * mib
	maxSize     = 4096 * mib
)

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

type driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer
	registration.UnimplementedRegistrationServer

	name, nodeID, stateDir, nodeSocket string
	mu                                 sync.Mutex // one volume/snapshot operation at a time: small and safe
}

func (d *driver) volumeFile(id string) string { return filepath.Join(d.stateDir, "volumes", id+".img") }
func (d *driver) snapshotFile(id string) string {
	return filepath.Join(d.stateDir, "snapshots", id+".img")
}
func (d *driver) snapshotMeta(id string) string {
	return filepath.Join(d.stateDir, "snapshots", id+".json")
}

func checkID(what, id string) error {
	if !validID.MatchString(id) {
		return status.Errorf(codes.InvalidArgument, "invalid %s %q", what, id)
	}
	return nil
}

func run(argv ...string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// copyFile copies src to dst through a temporary file renamed into place (sparse, as the volumes are).
func copyFile(src, dst string) error {
	tmp := dst + ".partial"
	os.Remove(tmp)
	if err := run("cp", "--sparse=always", src, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// isMounted: is path a mount point (from /proc/self/mountinfo)?
func isMounted(path string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	clean := filepath.Clean(path)
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && unescape(fields[4]) == clean {
			return true
		}
	}
	return false
}

// loopDevice: the loop device backed by file, or "".
func loopDevice(file string) string {
	backing, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, b := range backing {
		data, err := os.ReadFile(b)
		if err == nil && strings.TrimSuffix(strings.TrimSpace(string(data)), " (deleted)") == file {
			return "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(b)))
		}
	}
	return ""
}

func unescape(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// --- Identity

func (d *driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: d.name, VendorVersion: "0.1.0"}, nil
}

func (d *driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{{
		Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{
			Type: csi.PluginCapability_Service_CONTROLLER_SERVICE}}}}}, nil
}

func (d *driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}

// --- Controller

func controllerCap(t csi.ControllerServiceCapability_RPC_Type) *csi.ControllerServiceCapability {
	return &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{
		Rpc: &csi.ControllerServiceCapability_RPC{Type: t}}}
}

func (d *driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: []*csi.ControllerServiceCapability{
		controllerCap(csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME),
		controllerCap(csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT),
	}}, nil
}

func checkCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return status.Error(codes.InvalidArgument, "volume capabilities missing")
	}
	for _, c := range caps {
		if c.GetMount() == nil {
			return status.Error(codes.InvalidArgument, "only filesystem (mount) volumes are supported")
		}
		if fs := c.GetMount().GetFsType(); fs != "" && fs != "ext4" {
			return status.Errorf(codes.InvalidArgument, "fsType %q: only ext4", fs)
		}
		switch c.GetAccessMode().GetMode() {
		case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
			csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER, csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:
		default:
			return status.Errorf(codes.InvalidArgument, "access mode %v: only single-node modes", c.GetAccessMode().GetMode())
		}
	}
	return nil
}

// size rounds the requested range up to whole MiB, within [minSize, maxSize].
func size(r *csi.CapacityRange, atLeast int64) (int64, error) {
	want := r.GetRequiredBytes()
	if want == 0 {
		want = defaultSize
	}
	if want < atLeast {
		want = atLeast
	}
	if want < minSize {
		want = minSize
	}
	want = (want + mib - 1) / mib * mib
	if limit := r.GetLimitBytes(); limit > 0 && want > limit {
		return 0, status.Errorf(codes.OutOfRange, "size %d exceeds limit %d (minimum %d)", want, limit, minSize)
	}
	if want > maxSize {
		return 0, status.Errorf(codes.OutOfRange, "size %d exceeds this test driver's maximum %d", want, maxSize)
	}
	return want, nil
}

func (d *driver) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if err := checkID("volume name", req.GetName()); err != nil {
		return nil, err
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	if req.GetVolumeContentSource().GetVolume() != nil {
		return nil, status.Error(codes.InvalidArgument, "volume cloning is not supported")
	}
	snapID := req.GetVolumeContentSource().GetSnapshot().GetSnapshotId()
	d.mu.Lock()
	defer d.mu.Unlock()
	var snapSize int64
	if snapID != "" {
		if err := checkID("snapshot id", snapID); err != nil {
			return nil, err
		}
		st, err := os.Stat(d.snapshotFile(snapID))
		if err != nil {
			return nil, status.Errorf(codes.NotFound, "snapshot %s not found", snapID)
		}
		snapSize = st.Size()
	}
	want, err := size(req.GetCapacityRange(), snapSize)
	if err != nil {
		return nil, err
	}
	file := d.volumeFile(req.GetName())
	vol := &csi.Volume{VolumeId: req.GetName(), CapacityBytes: want, ContentSource: req.GetVolumeContentSource()}
	if st, err := os.Stat(file); err == nil { // idempotent: the same request again
		if st.Size() != want {
			return nil, status.Errorf(codes.AlreadyExists, "volume %s exists with size %d", req.GetName(), st.Size())
		}
		return &csi.CreateVolumeResponse{Volume: vol}, nil
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	tmp := file + ".partial"
	os.Remove(tmp)
	if snapID != "" {
		err = run("cp", "--sparse=always", d.snapshotFile(snapID), tmp)
		if err == nil && want > snapSize { // grow: check the copy, then resize its filesystem
			if err = os.Truncate(tmp, want); err == nil {
				if err = run("e2fsck", "-f", "-p", tmp); err == nil {
					err = run("resize2fs", tmp)
				}
			}
		}
	} else {
		if err = run("truncate", "-s", fmt.Sprint(want), tmp); err == nil {
			err = run("mkfs.ext4", "-F", "-q", "-E", "root_owner=0:0", tmp)
		}
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, status.Errorf(codes.Internal, "creating volume %s: %v", req.GetName(), err)
	}
	log.Printf("created volume %s (%d bytes, snapshot %q)", req.GetName(), want, snapID)
	return &csi.CreateVolumeResponse{Volume: vol}, nil
}

func (d *driver) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if err := checkID("volume id", req.GetVolumeId()); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// A volume still staged is in use (as a cloud disk still attached): the provisioner retries later.
	if dev := loopDevice(d.volumeFile(req.GetVolumeId())); dev != "" {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is in use (%s)", req.GetVolumeId(), dev)
	}
	if err := os.Remove(d.volumeFile(req.GetVolumeId())); err != nil && !os.IsNotExist(err) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	log.Printf("deleted volume %s", req.GetVolumeId())
	return &csi.DeleteVolumeResponse{}, nil
}

func (d *driver) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if err := checkID("volume id", req.GetVolumeId()); err != nil {
		return nil, err
	}
	if _, err := os.Stat(d.volumeFile(req.GetVolumeId())); err != nil {
		return nil, status.Errorf(codes.NotFound, "volume %s not found", req.GetVolumeId())
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeCapabilities: req.GetVolumeCapabilities()}}, nil
}

type snapshotInfo struct {
	Source  string `json:"source_volume_id"`
	Size    int64  `json:"size_bytes"`
	Created int64  `json:"creation_unix_nano"`
}

func (d *driver) CreateSnapshot(_ context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if err := checkID("snapshot name", req.GetName()); err != nil {
		return nil, err
	}
	if err := checkID("source volume id", req.GetSourceVolumeId()); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var info snapshotInfo
	if data, err := os.ReadFile(d.snapshotMeta(req.GetName())); err == nil { // idempotent
		if err := json.Unmarshal(data, &info); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		if info.Source != req.GetSourceVolumeId() {
			return nil, status.Errorf(codes.AlreadyExists, "snapshot %s exists for volume %s", req.GetName(), info.Source)
		}
	} else {
		src := d.volumeFile(req.GetSourceVolumeId())
		st, err := os.Stat(src)
		if err != nil {
			return nil, status.Errorf(codes.NotFound, "volume %s not found", req.GetSourceVolumeId())
		}
		if err := os.MkdirAll(filepath.Dir(d.snapshotFile(req.GetName())), 0o700); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		// A copy of the loop file: it reads the page cache the loop device writes through, so a
		// filesystem frozen meanwhile (all its writes completed) is copied consistently.
		started := time.Now()
		if err := copyFile(src, d.snapshotFile(req.GetName())); err != nil {
			return nil, status.Errorf(codes.Internal, "snapshot %s: %v", req.GetName(), err)
		}
		info = snapshotInfo{Source: req.GetSourceVolumeId(), Size: st.Size(), Created: started.UnixNano()}
		data, _ := json.Marshal(info)
		if err := os.WriteFile(d.snapshotMeta(req.GetName()), data, 0o600); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		log.Printf("created snapshot %s of volume %s in %v", req.GetName(), info.Source, time.Since(started))
	}
	return &csi.CreateSnapshotResponse{Snapshot: &csi.Snapshot{
		SnapshotId: req.GetName(), SourceVolumeId: info.Source, SizeBytes: info.Size, ReadyToUse: true,
		CreationTime: timestamppb.New(time.Unix(0, info.Created))}}, nil
}

func (d *driver) DeleteSnapshot(_ context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	if err := checkID("snapshot id", req.GetSnapshotId()); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range []string{d.snapshotFile(req.GetSnapshotId()), d.snapshotMeta(req.GetSnapshotId())} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	log.Printf("deleted snapshot %s", req.GetSnapshotId())
	return &csi.DeleteSnapshotResponse{}, nil
}

// --- Node

func (d *driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.nodeID}, nil
}

func (d *driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{Capabilities: []*csi.NodeServiceCapability{{
		Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{
			Type: csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME}}}}}, nil
}

func (d *driver) NodeStageVolume(_ context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	if err := checkID("volume id", req.GetVolumeId()); err != nil {
		return nil, err
	}
	target := req.GetStagingTargetPath()
	if target == "" {
		return nil, status.Error(codes.InvalidArgument, "staging target path missing")
	}
	if err := checkCapabilities([]*csi.VolumeCapability{req.GetVolumeCapability()}); err != nil {
		return nil, err
	}
	file := d.volumeFile(req.GetVolumeId())
	if _, err := os.Stat(file); err != nil {
		return nil, status.Errorf(codes.NotFound, "volume %s not found", req.GetVolumeId())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if isMounted(target) {
		return &csi.NodeStageVolumeResponse{}, nil
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := run("mount", "-t", "ext4", "-o", "loop", file, target); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.NodeStageVolumeResponse{}, nil
}

func unmount(target string) error {
	if !isMounted(target) {
		return nil
	}
	if err := run("umount", target); err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	return nil
}

func (d *driver) NodeUnstageVolume(_ context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	if req.GetStagingTargetPath() == "" {
		return nil, status.Error(codes.InvalidArgument, "staging target path missing")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := unmount(req.GetStagingTargetPath()); err != nil { // the loop device autoclears
		return nil, err
	}
	return &csi.NodeUnstageVolumeResponse{}, nil
}

func (d *driver) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	staging, target := req.GetStagingTargetPath(), req.GetTargetPath()
	if staging == "" || target == "" {
		return nil, status.Error(codes.InvalidArgument, "staging or target path missing")
	}
	if err := checkCapabilities([]*csi.VolumeCapability{req.GetVolumeCapability()}); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !isMounted(staging) {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is not staged at %s", req.GetVolumeId(), staging)
	}
	if isMounted(target) {
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := run("mount", "--bind", staging, target); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if req.GetReadonly() {
		if err := run("mount", "-o", "remount,bind,ro", target); err != nil {
			run("umount", target)
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (d *driver) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	if req.GetTargetPath() == "" {
		return nil, status.Error(codes.InvalidArgument, "target path missing")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := unmount(req.GetTargetPath()); err != nil {
		return nil, err
	}
	os.Remove(req.GetTargetPath())
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// --- kubelet plugin registration (what node-driver-registrar does for real drivers)

func (d *driver) GetInfo(context.Context, *registration.InfoRequest) (*registration.PluginInfo, error) {
	return &registration.PluginInfo{Type: registration.CSIPlugin, Name: d.name, Endpoint: d.nodeSocket,
		SupportedVersions: []string{"1.0.0"}}, nil
}

func (d *driver) NotifyRegistrationStatus(_ context.Context, s *registration.RegistrationStatus) (*registration.RegistrationStatusResponse, error) {
	if s.PluginRegistered {
		log.Printf("registered with the kubelet")
	} else {
		log.Printf("the kubelet refused the registration: %s", s.Error)
	}
	return &registration.RegistrationStatusResponse{}, nil
}

func listen(path string) net.Listener {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		log.Fatal(err)
	}
	os.Remove(path) // a stale socket of ours from a previous run
	l, err := net.Listen("unix", path)
	if err != nil {
		log.Fatal(err)
	}
	return l
}

func logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err != nil {
		log.Printf("%s: %v", info.FullMethod, err)
	}
	return resp, err
}

func main() {
	d := &driver{}
	var controllerSocket, registrationSocket string
	flag.StringVar(&d.name, "name", "csi.kubehooks.local", "driver name")
	flag.StringVar(&d.nodeID, "node-id", "", "this node's name")
	flag.StringVar(&d.stateDir, "state-dir", "", "directory of the volume and snapshot files")
	flag.StringVar(&controllerSocket, "controller-socket", "", "socket for the sidecars")
	flag.StringVar(&d.nodeSocket, "node-socket", "", "socket for the kubelet (<kubelet root>/plugins/<name>/csi.sock)")
	flag.StringVar(&registrationSocket, "registration-socket", "", "socket in <kubelet root>/plugins_registry")
	flag.Parse()
	if d.nodeID == "" || d.stateDir == "" || controllerSocket == "" || d.nodeSocket == "" || registrationSocket == "" {
		fmt.Fprintln(os.Stderr, "all of --node-id, --state-dir, --controller-socket, --node-socket, --registration-socket are required")
		os.Exit(2)
	}
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	csiServer := grpc.NewServer(grpc.UnaryInterceptor(logCalls))
	csi.RegisterIdentityServer(csiServer, d)
	csi.RegisterControllerServer(csiServer, d)
	csi.RegisterNodeServer(csiServer, d)
	regServer := grpc.NewServer()
	registration.RegisterRegistrationServer(regServer, d)
	// The node socket first: the kubelet calls it as soon as the registration socket appears.
	go csiServer.Serve(listen(d.nodeSocket))
	go csiServer.Serve(listen(controllerSocket))
	go regServer.Serve(listen(registrationSocket))
	log.Printf("%s serving: controller %s, node %s, registration %s", d.name, controllerSocket, d.nodeSocket, registrationSocket)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	regServer.Stop()
	csiServer.Stop()
	for _, p := range []string{registrationSocket, d.nodeSocket, controllerSocket} {
		os.Remove(p)
	}
}
