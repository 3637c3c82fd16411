"""ament_python build of svs_gan_ros.

colcon installs launch/ (the node alone, with CARLA, with a bag replay) and config/ into
share/svs_gan_ros and the console scripts into lib/svs_gan_ros, where `ros2 run` and
`ros2 launch` look for them.
"""

from glob import glob
import os

from setuptools import find_packages, setup

package_name = 'svs_gan_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        (os.path.join('share', package_name, 'launch'), glob('launch/*.launch.py')),
        (os.path.join('share', package_name, 'config'), glob('config/*.yaml') + glob('config/*.json')),
    ],
    # svsgan (svsgan_core + torch) is installed from the repository root; see package.xml.
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='svsgan maintainers',
    maintainer_email='svsgan@example.org',
    description='SVS-GAN generator node: semantic-segmentation topics to photorealistic frames',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'generator_node = svs_gan_ros.generator_node:main',
            'convert_bag = svs_gan_ros.convert_bag:main',
        ],
    },
)
