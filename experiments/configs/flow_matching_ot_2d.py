"""Conditional flow matching with mini-batch optimal-transport coupling (Tong et al. 2023,
OT-CFM) on 2-D toys: flow_matching_2d with model.coupling='ot', i.e. each batch's noise is
re-paired with the data by the exact assignment minimising the total squared distance
(jgen.flow_matching.ExactOT: scipy's Hungarian algorithm on a CPU backend, the Hungarian
in lax loops on accelerators).
Launch: ``jgen train flow_matching_ot_2d:checkerboard``.
"""

from jgen.config import shared_config_module

ARGS = ("8gaussians", "checkerboard")

_base = shared_config_module("flow_matching_2d")


def get_config(arg: str | None = None, smoke: bool = False):
    return _base.get_config(arg, smoke, coupling="ot")
