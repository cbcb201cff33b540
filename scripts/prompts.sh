#!/bin/sh
# Regenerates ivr/prompts/: the default IVR prompts, spoken by espeak-ng and converted by sox to
# 8 kHz mono G.711 mu-law WAV (8 KB per second), plus a beep, a ring-back-free hold music loop,
# and the numbers used by position announcements. Debian: apt-get install espeak-ng sox.
# Usage: scripts/prompts.sh [OUTDIR]   (default ivr/prompts)
set -eu
out=${1:-ivr/prompts}
for tool in espeak-ng sox; do
	command -v "$tool" >/dev/null 2>&1 || { echo "prompts.sh: $tool is missing: apt-get install espeak-ng sox" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# say LANG NAME TEXT: one prompt, trimmed of leading silence, normalised, mu-law 8 kHz mono.
say() {
	lang=$1 name=$2 text=$3
	mkdir -p "$out/$lang"
	espeak-ng -v "$lang" -s 165 -w "$tmp/raw.wav" "$text"
	sox "$tmp/raw.wav" -r 8000 -c 1 -e u-law -b 8 "$out/$lang/$name.wav" \
		silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse norm -3
}

# English
say en greeting "Thank you for calling Switchboard. For support, press 1. For sales, press 2. To leave a message, press 9."
say en menu "For support, press 1. For sales, press 2. To leave a message, press 9."
say en invalid "Sorry, that is not a valid choice."
say en please_hold "Please hold. Your call will be answered by the next available agent."
say en voicemail "Please leave a message after the tone. Press the pound key when you are done."
say en goodbye "Thank you. Goodbye."
say en closed "We are closed right now."
say en position "You are caller number"
say en position_many "There are more than twenty callers ahead of you."
say en transfer "Please hold while we transfer your call."
say en callback_offer "To hang up and be called back when it is your turn, press 1."
say en callback_confirm "Thank you. We will call you back when it is your turn. Goodbye."
# French (language selection example: "2 pour le français")
say fr greeting "Merci d'avoir appelé Switchboard. Pour le support, tapez 1. Pour les ventes, tapez 2. Pour laisser un message, tapez 9."
say fr menu "Pour le support, tapez 1. Pour les ventes, tapez 2. Pour laisser un message, tapez 9."
say fr invalid "Désolé, ce choix n'est pas valide."
say fr please_hold "Veuillez patienter. Un conseiller va vous répondre."
say fr voicemail "Laissez votre message après le bip. Tapez dièse pour terminer."
say fr goodbye "Merci. Au revoir."
say fr closed "Nous sommes fermés pour le moment."
say fr position "Vous êtes l'appelant numéro"
say fr position_many "Plus de vingt appelants sont avant vous."
say fr transfer "Veuillez patienter, nous transférons votre appel."
say fr callback_offer "Pour raccrocher et être rappelé quand ce sera votre tour, tapez 1."
say fr callback_confirm "Merci. Nous vous rappellerons quand ce sera votre tour. Au revoir."
for n in $(seq 1 20); do
	say en "num_$n" "$n"
	say fr "num_$n" "$n"
done

# Language-neutral: the voicemail beep (1 kHz, 400 ms) and the hold music loop (a slow arpeggio).
mkdir -p "$out"
sox -n -r 8000 -c 1 -e u-law -b 8 "$out/beep.wav" synth 0.4 sine 1000 vol 0.5
sox -n -r 8000 -c 1 -b 16 "$tmp/m1.wav" synth 0.5 pluck C4 vol 0.4
sox -n -r 8000 -c 1 -b 16 "$tmp/m2.wav" synth 0.5 pluck E4 vol 0.4
sox -n -r 8000 -c 1 -b 16 "$tmp/m3.wav" synth 0.5 pluck G4 vol 0.4
sox -n -r 8000 -c 1 -b 16 "$tmp/m4.wav" synth 0.5 pluck C5 vol 0.4
sox "$tmp/m1.wav" "$tmp/m2.wav" "$tmp/m3.wav" "$tmp/m4.wav" "$tmp/m3.wav" "$tmp/m2.wav" \
	"$tmp/m1.wav" "$tmp/m3.wav" "$tmp/m2.wav" "$tmp/m4.wav" "$tmp/m1.wav" "$tmp/m1.wav" \
	-e u-law -b 8 "$out/music.wav"
echo "prompts.sh: wrote $(find "$out" -name '*.wav' | wc -l) prompts to $out ($(cat $(find "$out" -name "*.wav") | wc -c) bytes)"
