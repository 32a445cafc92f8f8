"""Availability: admission control by criticality and data-plane configuration.

Modules: ``classes`` (criticality), ``patterns``/``classify`` (routes), ``config`` ([shed] table),
``limiter`` (gradient concurrency limit), ``throttle`` (client-side throttling), ``admission``
(shares per class), ``haproxy_config``/``maps``/``runtime`` (HAProxy data plane), ``controller``
(control loop), ``status``/``metrics``/``cli`` (reporting), ``middleware`` (ASGI).
"""

from rempart.shed.middleware import AdmissionMiddleware

__all__ = ["AdmissionMiddleware"]
