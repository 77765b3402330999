// A verifier the vault did not write: Go's checksum-database packages (golang.org/x/mod/sumdb
// note and tlog) check the vault's audit log as any C2SP tlog client would. Only the
// cosignature/v1 verifier below is spelled out here, from the C2SP tlog-cosignature text,
// because x/mod predates it.
//
// Usage: outside_verifier <mirror dir> <log vkey> <witness vkey> [<proof file> <leaf hash hex>]
// The mirror holds checkpoint, tile/... and tile/entries/... as the vault serves them.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type cosigner struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func (c cosigner) Name() string    { return c.name }
func (c cosigner) KeyHash() uint32 { return c.hash }
func (c cosigner) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig[:8])
	signed := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", t)), msg...)
	return ed25519.Verify(c.key, signed, sig[8:])
}

func parseCosigner(vkey string) cosigner {
	parts := strings.SplitN(vkey, "+", 3)
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 33 || raw[0] != 0x04 {
		fail("witness key %q is not a cosignature/v1 key", vkey)
	}
	h := sha256.Sum256(append([]byte(parts[0]+"\n"), raw...))
	c := cosigner{parts[0], binary.BigEndian.Uint32(h[:4]), ed25519.PublicKey(raw[1:])}
	if fmt.Sprintf("%08x", c.hash) != parts[1] {
		fail("witness key id mismatch")
	}
	return c
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

// openCheckpoint checks the log's signature and the witness's cosignature, and reads the tree.
func openCheckpoint(text []byte, logKey note.Verifier, witness cosigner) tlog.Tree {
	n, err := note.Open(text, note.VerifierList(logKey, witness))
	if err != nil {
		fail("checkpoint: %v", err)
	}
	if len(n.Sigs) != 2 {
		fail("checkpoint: want the log's signature and the witness's cosignature, got %d", len(n.Sigs))
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[0] != logKey.Name() {
		fail("checkpoint: origin %q is not the log's", lines[0])
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size: %v", err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		fail("checkpoint root: %v", err)
	}
	var tree tlog.Tree
	tree.N = size
	copy(tree.Hash[:], root)
	return tree
}

type mirror struct{ dir string }

func (m mirror) Height() int { return 8 }
func (m mirror) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	var out [][]byte
	for _, t := range tiles {
		// x/mod names tiles tile/<H>/<L>/<N>; C2SP tlog-tiles fixes H = 8 and drops it.
		path := strings.Replace(t.Path(), "tile/8/", "tile/", 1)
		data, err := os.ReadFile(filepath.Join(m.dir, path))
		if err != nil {
			return nil, err
		}
		out = append(out, data)
	}
	return out, nil
}
func (m mirror) SaveTiles([]tlog.Tile, [][]byte) {}

func entryBundlePath(n int64, width int) string {
	t := tlog.Tile{H: 8, L: 0, N: n, W: width}
	return strings.Replace(t.Path(), "tile/8/0/", "tile/entries/", 1)
}

func main() {
	dir := os.Args[1]
	logKey, err := note.NewVerifier(os.Args[2])
	if err != nil {
		fail("log key: %v", err)
	}
	witness := parseCosigner(os.Args[3])
	text, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		fail("%v", err)
	}
	tree := openCheckpoint(text, logKey, witness)

	// Tiles: every hash the reader returns is authenticated against the checkpoint's root.
	reader := tlog.TileHashReader(tree, mirror{dir})
	root, err := tlog.TreeHash(tree.N, reader)
	if err != nil || root != tree.Hash {
		fail("tiles do not hash to the checkpoint's root: %v", err)
	}
	// Entries: each entry in the bundles hashes to its leaf in the authenticated tiles.
	for start := int64(0); start < tree.N; start += 256 {
		width := int(tree.N - start)
		if width > 256 {
			width = 256
		}
		data, err := os.ReadFile(filepath.Join(dir, entryBundlePath(start/256, width)))
		if err != nil {
			fail("%v", err)
		}
		for i := int64(0); i < int64(width); i++ {
			if len(data) < 2 {
				fail("entry bundle %d ends early", start/256)
			}
			size := int(binary.BigEndian.Uint16(data[:2]))
			entry := data[2 : 2+size]
			data = data[2+size:]
			leaf, err := reader.ReadHashes([]int64{tlog.StoredHashIndex(0, start+i)})
			if err != nil || leaf[0] != tlog.RecordHash(entry) {
				fail("entry %d does not hash to its leaf: %v", start+i, err)
			}
			proof, err := tlog.ProveRecord(tree.N, start+i, reader)
			if err != nil || tlog.CheckRecord(proof, tree.N, tree.Hash, start+i, tlog.RecordHash(entry)) != nil {
				fail("entry %d has no valid inclusion proof: %v", start+i, err)
			}
		}
		if len(data) != 0 {
			fail("entry bundle %d has trailing bytes", start/256)
		}
	}
	fmt.Printf("tiles ok: %d entries\n", tree.N)

	if len(os.Args) < 6 {
		return
	}
	// A receipt's C2SP tlog-proof, checked offline against the given leaf hash.
	proofText, err := os.ReadFile(os.Args[4])
	if err != nil {
		fail("%v", err)
	}
	parts := bytes.SplitN(proofText, []byte("\n\n"), 2)
	lines := strings.Split(string(parts[0]), "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" || !strings.HasPrefix(lines[1], "index ") {
		fail("not a tlog-proof")
	}
	index, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "index "), 10, 64)
	if err != nil {
		fail("proof index: %v", err)
	}
	var path tlog.RecordProof
	for _, line := range lines[2:] {
		raw, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(raw) != tlog.HashSize {
			fail("proof hash %q", line)
		}
		var h tlog.Hash
		copy(h[:], raw)
		path = append(path, h)
	}
	proofTree := openCheckpoint(parts[1], logKey, witness)
	leafRaw, err := hex.DecodeString(os.Args[5])
	if err != nil || len(leafRaw) != tlog.HashSize {
		fail("leaf hash")
	}
	var leaf tlog.Hash
	copy(leaf[:], leafRaw)
	if err := tlog.CheckRecord(path, proofTree.N, proofTree.Hash, index, leaf); err != nil {
		fail("receipt proof: %v", err)
	}
	fmt.Printf("receipt ok: leaf %d of %d\n", index, proofTree.N)
}
