#!/bin/sh
# Regenerates the MPEG-TS, fragmented MP4 and FLV fixtures used by the unit tests in
# src/container/{mpegts,mp4,flv}.rs. Small on purpose (160x120, 10 fps, 3 s, a keyframe every
# 10 frames). Everything is written to a pipe (`-`), as a live feed does, so nothing is seeked
# back (FLV keeps its unknown duration, MP4 stays fragmented). The tests compare against
# ffprobe at run time, not against numbers baked in here, so a different ffmpeg only needs
# this script re-run.
set -eu
cd "$(dirname "$0")"
FF="ffmpeg -hide_banner -loglevel error -nostdin -fflags +bitexact -flags +bitexact"
V="-f lavfi -i testsrc2=size=160x120:rate=10"
A="-f lavfi -i sine=frequency=440:sample_rate=44100"
X264="-c:v libx264 -preset veryfast -pix_fmt yuv420p -g 10 -bf 0"
X265="-c:v libx265 -preset ultrafast -pix_fmt yuv420p
      -x265-params keyint=10:min-keyint=10:bframes=0:log-level=error"
AAC="-c:a aac -b:a 32k -ac 1"
FRAG="-movflags frag_keyframe+empty_moov+default_base_moof"
# Video fragments also every 0.3 s, so that some of them start without a keyframe.
FRAG_V="$FRAG -frag_duration 300000"

# H.264 + AAC in MPEG-TS, HEVC + AAC in MPEG-TS, and AAC alone in MPEG-TS (audio-only).
$FF $V $A -t 3 $X264 $AAC -f mpegts - > h264_aac.ts
$FF $V $A -t 3 $X265 $AAC -f mpegts - > hevc_aac.ts
$FF $A -t 3 $AAC -f mpegts - > aac.ts
# Fragmented MP4: a fragment at each keyframe and every 0.3 s; audio-only: every 0.5 s.
$FF $V $A -t 3 $X264 $AAC $FRAG_V -f mp4 - > h264_aac.mp4
$FF $A -t 3 $AAC $FRAG -frag_duration 500000 -f mp4 - > aac.mp4
# FLV: H.264 + AAC, and AAC alone (audio-only).
$FF $V $A -t 3 $X264 $AAC -f flv - > h264_aac.flv
$FF $A -t 3 $AAC -f flv - > aac.flv
ls -l h264_aac.ts hevc_aac.ts aac.ts h264_aac.mp4 aac.mp4 h264_aac.flv aac.flv
