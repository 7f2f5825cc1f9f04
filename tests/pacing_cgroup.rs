//! The container's memory limit, read from fake cgroup trees (files under a
//! temporary root; no cgroup is created): v1, v2, nested, `max`, missing.

use std::path::{Path, PathBuf};

use gcmalloc::container_memory_limit;

const MIB: usize = 1 << 20;

/// A fake root with the given files (path, contents), removed on drop.
struct Tree(PathBuf);

impl Tree {
    fn new(name: &str, files: &[(&str, &str)]) -> Tree {
        let root = std::env::temp_dir().join(format!("gcmalloc-cgroup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (path, contents) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        Tree(root)
    }

    fn limit(&self) -> Option<usize> {
        container_memory_limit(&self.0)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn v2_reads_memory_max() {
    let tree = Tree::new("v2", &[("proc/self/cgroup", "0::/app\n"), ("sys/fs/cgroup/app/memory.max", "268435456\n")]);
    assert_eq!(tree.limit(), Some(256 * MIB));
}

#[test]
fn v2_takes_the_lower_of_max_and_high() {
    let tree = Tree::new(
        "v2-high",
        &[
            ("proc/self/cgroup", "0::/app\n"),
            ("sys/fs/cgroup/app/memory.max", "268435456\n"),
            ("sys/fs/cgroup/app/memory.high", "201326592\n"),
        ],
    );
    assert_eq!(tree.limit(), Some(192 * MIB));
}

#[test]
fn v2_nested_takes_the_least_along_the_path() {
    let tree = Tree::new(
        "v2-nested",
        &[
            ("proc/self/cgroup", "0::/kubepods/pod1/ctr\n"),
            ("sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "536870912\n"),
            ("sys/fs/cgroup/kubepods/pod1/ctr/memory.high", "max\n"),
            ("sys/fs/cgroup/kubepods/pod1/memory.max", "134217728\n"),
            ("sys/fs/cgroup/kubepods/memory.max", "1073741824\n"),
        ],
    );
    assert_eq!(tree.limit(), Some(128 * MIB), "the pod's limit, below the container's own");
}

#[test]
fn v2_max_everywhere_is_no_limit() {
    let tree = Tree::new(
        "v2-max",
        &[
            ("proc/self/cgroup", "0::/a/b\n"),
            ("sys/fs/cgroup/a/b/memory.max", "max\n"),
            ("sys/fs/cgroup/a/b/memory.high", "max\n"),
            ("sys/fs/cgroup/a/memory.max", "max\n"),
        ],
    );
    assert_eq!(tree.limit(), None);
}

#[test]
fn v2_root_cgroup_of_a_namespaced_container() {
    let tree = Tree::new("v2-ns", &[("proc/self/cgroup", "0::/\n"), ("sys/fs/cgroup/memory.max", "536870912\n")]);
    assert_eq!(tree.limit(), Some(512 * MIB));
}

#[test]
fn v1_reads_limit_in_bytes_of_the_memory_controller() {
    let tree = Tree::new(
        "v1",
        &[
            ("proc/self/cgroup", "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n"),
            ("sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "104857600\n"),
            ("sys/fs/cgroup/memory/docker/memory.limit_in_bytes", "9223372036854771712\n"),
        ],
    );
    assert_eq!(tree.limit(), Some(100 * MIB));
}

#[test]
fn v1_unlimited_is_no_limit() {
    let tree = Tree::new(
        "v1-unlimited",
        &[
            ("proc/self/cgroup", "4:memory:/\n"),
            ("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n"),
        ],
    );
    assert_eq!(tree.limit(), None);
}

#[test]
fn missing_files_are_no_limit() {
    assert_eq!(Tree::new("empty", &[]).limit(), None, "no /proc/self/cgroup");
    let tree = Tree::new("no-limit-files", &[("proc/self/cgroup", "0::/app\n")]);
    assert_eq!(tree.limit(), None, "no memory.max anywhere");
    assert_eq!(container_memory_limit(Path::new("/nonexistent/gcmalloc")), None);
}

#[test]
fn unparsable_figures_are_skipped() {
    let tree = Tree::new(
        "garbage",
        &[
            ("proc/self/cgroup", "garbage line\n0::/app\n"),
            ("sys/fs/cgroup/app/memory.max", "lots\n"),
            ("sys/fs/cgroup/memory.high", "1048576\n"),
        ],
    );
    assert_eq!(tree.limit(), Some(MIB));
}
