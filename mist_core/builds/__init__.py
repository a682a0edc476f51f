"""Builds: choosing or generating an app's Dockerfile (``detect``) and running the image build (``runner``)."""

from mist_core.builds.detect import BuildPlan, plan_build
from mist_core.builds.runner import BuildCancelled, BuildFailed, build_image

__all__ = ["BuildCancelled", "BuildFailed", "BuildPlan", "build_image", "plan_build"]
