#!/bin/bash
# Source ROS 2 and the svs_gan_ros workspace, then run the command (ros2 launch ..., svsgan ...).
set -e
source /opt/ros/jazzy/setup.bash
source /opt/svsgan/ros2_ws/install/setup.bash
exec "$@"
