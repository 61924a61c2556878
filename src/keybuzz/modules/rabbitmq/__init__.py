"""Module 5, RabbitMQ HA: 3 nodes, quorum queues, HAProxy round robin over the healthy members."""

from keybuzz.modules.rabbitmq.module import MODULE, RabbitmqModule

__all__ = ["MODULE", "RabbitmqModule"]
