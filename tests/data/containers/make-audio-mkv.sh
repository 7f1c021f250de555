#!/bin/sh
# Regenerates the Matroska/WebM, JPEG and audio fixtures used by the unit tests in
# src/container/{matroska,jpeg,mp3,adts,ogg,wav}.rs. Everything is written to a pipe
# (`-`), as a live feed does: nothing is seeked back, so the Matroska Segment and the WAV
# sizes stay unknown (ffmpeg 5.1 still writes known Cluster sizes to a pipe; a test rewrites
# them as unknown).
# The tests compare against ffprobe and a walk of each file, not against numbers baked in,
# so a different ffmpeg version only needs this script re-run. Matroska UIDs and Ogg serial
# numbers are random: those files differ from run to run, the others are bit-exact.
set -eu
cd "$(dirname "$0")"
FF="ffmpeg -hide_banner -loglevel error -nostdin -fflags +bitexact -flags +bitexact"
V="-f lavfi -i testsrc2=size=160x120:rate=10"
A="-f lavfi -i sine=frequency=440:sample_rate=48000"

# WebM VP9 + Opus, 3 s, keyframe every 10 frames, unknown Segment/Cluster sizes.
$FF $V $A -t 3 -map 0:v -map 1:a -c:v libvpx-vp9 -deadline realtime -b:v 100k -g 10 \
    -c:a libopus -b:a 32k -f webm - > vp9-opus.webm
# Matroska written to a pipe with small clusters: several clusters per keyframe interval.
$FF $V -t 2 -c:v libvpx-vp9 -deadline realtime -b:v 100k -g 10 \
    -cluster_time_limit 300 -f matroska - > vp9-clusters.mkv
# Audio-only WebM (Opus), for audio_only detection.
$FF $A -t 2 -c:a libopus -b:a 32k -f webm - > opus.webm
# Raw MJPEG and ffmpeg's MPJPEG (multipart/x-mixed-replace, boundary "ffmpeg").
$FF $V -t 1 -c:v mjpeg -q:v 10 -f mjpeg - > testsrc.mjpeg
$FF $V -t 1 -c:v mjpeg -q:v 10 -f mpjpeg - > testsrc.mpjpeg
# Audio-only formats, 2 s each (Ogg pages of 100 ms, as a live feed would use).
$FF $A -t 2 -c:a libmp3lame -b:a 64k -f mp3 - > sine.mp3
$FF $A -t 2 -c:a aac -b:a 64k -f adts - > sine.aac
$FF $A -t 2 -c:a libopus -b:a 32k -page_duration 100000 -f ogg - > sine-opus.ogg
$FF $A -t 2 -c:a libvorbis -q:a 0 -page_duration 100000 -f ogg - > sine-vorbis.ogg
$FF $A -t 0.5 -ac 2 -c:a pcm_s16le -f wav - > sine.wav
ls -l vp9-opus.webm vp9-clusters.mkv opus.webm testsrc.mjpeg testsrc.mpjpeg \
    sine.mp3 sine.aac sine-opus.ogg sine-vorbis.ogg sine.wav
