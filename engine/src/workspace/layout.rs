//! [`WorkspaceLayout`]: where everything lives on the volume, every path derived once.

use std::path::{Path, PathBuf};

/// ComfyUI's model folder names (v0.3.64 `folder_paths`), each with the sub-folders of
/// `models/` that ComfyUI reads for it. The first entry is where comfydeck puts new files;
/// the others are legacy names that older volumes still use.
pub const MODEL_FOLDERS: &[(&str, &[&str])] = &[
    ("checkpoints", &["checkpoints"]),
    ("configs", &["configs"]),
    ("loras", &["loras"]),
    ("vae", &["vae"]),
    ("text_encoders", &["text_encoders", "clip"]),
    ("diffusion_models", &["diffusion_models", "unet"]),
    ("clip_vision", &["clip_vision"]),
    ("style_models", &["style_models"]),
    ("embeddings", &["embeddings"]),
    ("diffusers", &["diffusers"]),
    ("vae_approx", &["vae_approx"]),
    ("controlnet", &["controlnet", "t2i_adapter"]),
    ("gligen", &["gligen"]),
    ("upscale_models", &["upscale_models"]),
    ("hypernetworks", &["hypernetworks"]),
    ("photomaker", &["photomaker"]),
    ("classifiers", &["classifiers"]),
    ("model_patches", &["model_patches"]),
    ("audio_encoders", &["audio_encoders"]),
];

/// Where everything lives on the volume. No other module builds a workspace path by hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceLayout {
    root: PathBuf,
}

impl WorkspaceLayout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        WorkspaceLayout { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn models(&self) -> PathBuf {
        self.root.join("models")
    }
    pub fn output(&self) -> PathBuf {
        self.root.join("output")
    }
    pub fn input(&self) -> PathBuf {
        self.root.join("input")
    }
    pub fn workflows(&self) -> PathBuf {
        self.root.join("workflows")
    }
    pub fn workflow_templates(&self) -> PathBuf {
        self.workflows().join("templates")
    }
    pub fn workflow_user(&self) -> PathBuf {
        self.workflows().join("user")
    }
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("config")
    }
    pub fn extra_model_paths_yaml(&self) -> PathBuf {
        self.config_dir().join("extra_model_paths.yaml")
    }
    pub fn data(&self) -> PathBuf {
        self.root.join("data")
    }
    /// The gallery's thumbnail cache.
    pub fn thumbnails(&self) -> PathBuf {
        self.data().join("thumbs")
    }
    pub fn database(&self) -> PathBuf {
        self.data().join("comfydeck.db")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.data().join("comfydeck.lock")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn comfydeck_log(&self) -> PathBuf {
        self.logs().join("comfydeck.log")
    }
    pub fn comfyui_log(&self) -> PathBuf {
        self.logs().join("comfyui.log")
    }

    /// Every directory comfydeck creates at start-up.
    pub fn directories(&self) -> Vec<PathBuf> {
        let mut dirs = vec![
            self.models(),
            self.output(),
            self.input(),
            self.workflow_templates(),
            self.workflow_user(),
            self.config_dir(),
            self.data(),
            self.logs(),
        ];
        dirs.extend(
            MODEL_FOLDERS
                .iter()
                .map(|(_, subdirs)| self.models().join(subdirs[0])),
        );
        dirs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_paths_hang_off_the_root() {
        let layout = WorkspaceLayout::new("/workspace");
        assert_eq!(layout.database(), Path::new("/workspace/data/comfydeck.db"));
        assert_eq!(
            layout.extra_model_paths_yaml(),
            Path::new("/workspace/config/extra_model_paths.yaml")
        );
        assert!(layout
            .directories()
            .contains(&PathBuf::from("/workspace/models/text_encoders")));
        assert!(layout
            .directories()
            .iter()
            .all(|d| d.starts_with("/workspace")));
    }
}
