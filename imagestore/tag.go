package imagestore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/raind/condenser/internal/errdefs"
)

// Tag gives the image source (any form Inspect accepts) the name target
// (a tag reference: "app", "example.com/app:1"). A target naming another
// image moves to this one; that image, if the name was its last, stays
// without a name (Docker's dangling image) rather than losing what its
// containers use.
func (s *Store) Tag(ctx context.Context, source, target string) (Image, error) {
	r, err := ParseReference(target)
	if err != nil {
		return Image{}, fmt.Errorf("tag: %w", err)
	}
	if r.Digest != "" {
		return Image{}, fmt.Errorf("tag %s: a tag cannot be a digest reference: %w", target, errdefs.ErrInvalidArgument)
	}
	src, err := s.Inspect(ctx, source)
	if err != nil {
		return Image{}, fmt.Errorf("tag: %w", err)
	}
	img := src
	img.Name = r.String()
	img.Stored = time.Now().UTC()
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		if old := b.Get(img.key()); old != nil {
			var prev Image
			if err := json.Unmarshal(old, &prev); err != nil {
				return err
			}
			if prev.ID == img.ID {
				img.Stored = prev.Stored // tagging again changes nothing
			} else if err := keepNameless(b, prev); err != nil {
				return err
			}
		}
		v, err := json.Marshal(img)
		if err != nil {
			return err
		}
		return b.Put(img.key(), v)
	})
	if err != nil {
		return Image{}, fmt.Errorf("tag %s: %w", target, err)
	}
	return img, nil
}

// keepNameless records prev under its ID when the name it is losing is its
// last one.
func keepNameless(b *bolt.Bucket, prev Image) error {
	others := false
	err := b.ForEach(func(k, v []byte) error {
		if others || string(k) == string(prev.key()) {
			return nil
		}
		var o Image
		if err := json.Unmarshal(v, &o); err != nil {
			return err
		}
		others = o.ID == prev.ID
		return nil
	})
	if err != nil || others {
		return err
	}
	prev.Name = ""
	v, err := json.Marshal(prev)
	if err != nil {
		return err
	}
	return b.Put(prev.key(), v)
}
