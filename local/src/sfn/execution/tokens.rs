//! Task tokens: minted for each attempt of a callback task, delivered to by SendTaskSuccess,
//! SendTaskFailure and SendTaskHeartbeat, and closed when their task ends, after which they
//! answer `TaskTimedOut`. Only a token's hash is kept, in memory and in records.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use tokio::sync::mpsc;

/// A message to a waiting callback task.
#[derive(Debug)]
pub enum CallbackMessage {
    Success(serde_json::Value),
    Failure {
        error: String,
        cause: Option<String>,
    },
    Heartbeat,
}

/// Why a callback could not be delivered (the SendTask* error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    InvalidToken,
    TaskDoesNotExist,
    TaskTimedOut,
}

#[derive(Default)]
struct Slot {
    sender: Option<mpsc::UnboundedSender<CallbackMessage>>,
    receiver: Option<mpsc::UnboundedReceiver<CallbackMessage>>,
}

/// Every token the engine knows, by hash.
#[derive(Default)]
pub struct Tokens {
    slots: Mutex<HashMap<String, Slot>>,
}

/// The hash a token is kept under.
pub fn hash(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new task token. It contains `+`, `/` and `=` on purpose, as real tokens do.
pub fn mint() -> String {
    let bytes: [u8; 64] = rand::random();
    let mut token = base64::engine::general_purpose::STANDARD.encode(bytes);
    token.push_str("+/=");
    token
}

fn well_formed(token: &str) -> bool {
    token
        .strip_suffix("+/=")
        .and_then(|body| base64::engine::general_purpose::STANDARD.decode(body).ok())
        .is_some_and(|bytes| bytes.len() == 64)
}

impl Tokens {
    /// Opens a token for delivery (a new attempt, or one resumed after a restart).
    pub fn open(&self, token_hash: String) {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.slots.lock().expect("lock").insert(
            token_hash,
            Slot {
                sender: Some(sender),
                receiver: Some(receiver),
            },
        );
    }

    /// Closes a token: from now on it answers `TaskTimedOut`.
    pub fn close(&self, token_hash: &str) {
        self.slots
            .lock()
            .expect("lock")
            .insert(token_hash.to_owned(), Slot::default());
    }

    /// The receiving end of an open token, taken once by the task that waits on it.
    pub fn take_receiver(
        &self,
        token_hash: &str,
    ) -> Option<mpsc::UnboundedReceiver<CallbackMessage>> {
        self.slots
            .lock()
            .expect("lock")
            .get_mut(token_hash)
            .and_then(|slot| slot.receiver.take())
    }

    /// Delivers SendTaskSuccess, SendTaskFailure or SendTaskHeartbeat.
    pub fn deliver(&self, token: &str, message: CallbackMessage) -> Result<(), TokenError> {
        let mut slots = self.slots.lock().expect("lock");
        let Some(slot) = slots.get_mut(&hash(token)) else {
            return Err(if well_formed(token) {
                TokenError::TaskDoesNotExist
            } else {
                TokenError::InvalidToken
            });
        };
        let Some(sender) = &slot.sender else {
            return Err(TokenError::TaskTimedOut);
        };
        let closes = !matches!(message, CallbackMessage::Heartbeat);
        if sender.send(message).is_err() {
            return Err(TokenError::TaskTimedOut);
        }
        if closes {
            // Closed at once, so a second click answers TaskTimedOut even before the run moves on.
            slot.sender = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_deliver_once_then_time_out() {
        let tokens = Tokens::default();
        let token = mint();
        assert!(token.contains('+') && token.contains('/') && token.contains('='));
        assert_eq!(
            tokens.deliver(&token, CallbackMessage::Heartbeat),
            Err(TokenError::TaskDoesNotExist)
        );
        assert_eq!(
            tokens.deliver("not a token", CallbackMessage::Heartbeat),
            Err(TokenError::InvalidToken)
        );
        tokens.open(hash(&token));
        let mut receiver = tokens.take_receiver(&hash(&token)).unwrap();
        tokens.deliver(&token, CallbackMessage::Heartbeat).unwrap();
        tokens
            .deliver(&token, CallbackMessage::Success(serde_json::json!({})))
            .unwrap();
        assert_eq!(
            tokens.deliver(&token, CallbackMessage::Heartbeat),
            Err(TokenError::TaskTimedOut)
        );
        assert!(matches!(
            receiver.try_recv(),
            Ok(CallbackMessage::Heartbeat)
        ));
        assert!(matches!(
            receiver.try_recv(),
            Ok(CallbackMessage::Success(_))
        ));
    }
}
