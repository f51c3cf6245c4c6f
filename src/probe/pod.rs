//! Which Sidekiq processes belong to this pod.
//!
//! A process names itself `hostname:pid:nonce`, where the hostname is `$DYNO` when set and else
//! the machine's hostname, which in a pod is `spec.hostname`, else the pod name cut by the
//! kubelet to 63 characters. Inside the pod the probe can simply read the hostname the kernel
//! reports — the same one Sidekiq reads, whatever `hostNetwork` or `setHostnameAsFQDN` say —
//! and falls back to computing it from the pod name.

use crate::sidekiq::records::Identity;

/// The longest hostname the kubelet gives a pod.
pub const HOSTNAME_MAX: usize = 63;

/// The hostname the kubelet gives a pod: `spec.hostname` if set, else the pod name; cut to 63
/// characters and stripped of trailing `-` and `.` (kubelet `truncatePodHostnameIfNeeded`).
/// `None` when nothing is left.
pub fn pod_hostname(pod_name: &str, spec_hostname: Option<&str>) -> Option<String> {
    let name = spec_hostname.filter(|h| !h.is_empty()).unwrap_or(pod_name);
    if name.len() <= HOSTNAME_MAX {
        return (!name.is_empty()).then(|| name.to_owned());
    }
    // Pod names are DNS subdomains (ASCII), but never slice through a character regardless.
    let mut end = HOSTNAME_MAX;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let cut = name[..end].trim_end_matches(['-', '.']);
    (!cut.is_empty()).then(|| cut.to_owned())
}

/// Whether the process `identity` runs on `hostname`, judged from the identity alone so that a
/// process whose hash is unreadable or expired is still attributed to its pod.
pub fn belongs_to(identity: &str, hostname: &str) -> bool {
    Identity::parse(identity).is_some_and(|id| id.host == hostname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_hostname_wins_and_long_names_are_cut_like_the_kubelet() {
        assert_eq!(
            pod_hostname("worker-abc", None).as_deref(),
            Some("worker-abc")
        );
        assert_eq!(
            pod_hostname("worker-abc", Some("w0")).as_deref(),
            Some("w0")
        );
        assert_eq!(
            pod_hostname("worker-abc", Some("")).as_deref(),
            Some("worker-abc")
        );
        let long = format!("{}-{}", "a".repeat(62), "bcdef");
        // 62 a's, then '-' at index 62 is cut away with the rest.
        assert_eq!(pod_hostname(&long, None), Some("a".repeat(62)));
        let dots = format!("{}..-xyz", "b".repeat(61));
        assert_eq!(pod_hostname(&dots, None), Some("b".repeat(61)));
        assert_eq!(pod_hostname(&"-".repeat(70), None), None);
        assert_eq!(pod_hostname("", None), None);
        let exact = "c".repeat(63);
        assert_eq!(pod_hostname(&exact, None), Some(exact.clone()));
    }

    #[test]
    fn membership_is_decided_from_the_identity() {
        assert!(belongs_to("worker-0:12:ab12", "worker-0"));
        assert!(!belongs_to("worker-01:12:ab12", "worker-0"));
        assert!(!belongs_to("worker-0", "worker-0"));
        assert!(belongs_to("web.1:7:ff", "web.1"));
    }
}
