// Package rootfs will turn an image's unpacked layers
// (imagestore.Store.LayerDirs) into one container's overlayfs mounts, mount
// and unmount them, and fall back to copying where overlay cannot be used
// (step 3).
package rootfs
