"""Knowledge distillation (Hinton et al., 2015): the student's loss blends the usual one with the
KL divergence from the teacher's temperature-softened outputs, scaled by T^2 so the soft term's
gradients keep their size whatever the temperature."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def soft_target_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    t = temperature
    return (
        F.kl_div(F.log_softmax(student / t, -1), F.log_softmax(teacher / t, -1), log_target=True, reduction="batchmean")
        * t
        * t
    )


class Distiller:
    """A frozen teacher in eval mode, on the student's device. Not an nn.Module attribute of the
    LightningModule on purpose: its weights stay out of the student's checkpoints, optimizer and
    DDP wrapper (each DDP rank builds its own copy)."""

    def __init__(self, teacher: nn.Module, temperature: float, alpha: float):
        self.teacher = teacher.eval().requires_grad_(False)
        self.temperature, self.alpha = temperature, alpha

    def blend(self, loss: torch.Tensor, student_logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(1 - alpha) * the student's own loss + alpha * the soft-target loss on the same batch."""
        if next(self.teacher.parameters()).device != x.device:
            self.teacher.to(x.device)
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        soft = soft_target_loss(student_logits.float(), teacher_logits.float(), self.temperature)
        return (1 - self.alpha) * loss + self.alpha * soft
